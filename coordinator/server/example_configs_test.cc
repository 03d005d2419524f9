// The example configurations under deploy/examples parse as the daemons
// read them, with every required field: an operator copies them.
#include <gtest/gtest.h>

#include "common/text_config.h"
#include "dagvault/v1/admin.pb.h"
#include "dagvault/v1/agent.pb.h"
#include "dagvault/v1/mailstored.pb.h"

namespace dagvault::coordinator {
namespace {

void ExpectLoads(const std::string& name, google::protobuf::Message* config) {
  const std::string path = std::string(DAGVAULT_SOURCE_DIR) + "/deploy/examples/" + name;
  absl::Status loaded = LoadTextConfig(path, config);
  ASSERT_TRUE(loaded.ok()) << loaded;
  absl::Status complete = CheckRequiredFields(*config, path);
  EXPECT_TRUE(complete.ok()) << complete;
}

TEST(ExampleConfigsTest, EveryExampleConfigurationParsesWithItsRequiredFields) {
  dagvault::v1::CoordinatorConfig coordinator;
  ExpectLoads("coordinator.conf", &coordinator);
  EXPECT_EQ(coordinator.listen(), "0.0.0.0:7180");
  dagvault::v1::AgentConfig agent;
  ExpectLoads("agent.conf", &agent);
  EXPECT_EQ(agent.node(), "node2");
  dagvault::v1::MailstoredConfig mailstored;
  ExpectLoads("mailstored.conf", &mailstored);
  EXPECT_EQ(mailstored.units_size(), 2);
}

}  // namespace
}  // namespace dagvault::coordinator
