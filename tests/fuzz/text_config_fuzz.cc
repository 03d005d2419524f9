// Text configuration (common/text_config.h) for each message the daemons
// and tools read: a configuration that parses prints and parses back to
// the same message.
//
// Input: a byte choosing the message, then the text.
#include <memory>
#include <string>

#include "common/text_config.h"
#include "dagvault/v1/admin.pb.h"
#include "dagvault/v1/agent.pb.h"
#include "dagvault/v1/mailstore.pb.h"
#include "dagvault/v1/mailstored.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "tests/fuzz/fuzz_entry.h"

namespace dagvault::fuzz {
namespace {

std::unique_ptr<google::protobuf::Message> NewConfig(uint8_t which) {
  switch (which % 7) {
    case 0:
      return std::make_unique<dagvault::v1::AgentConfig>();
    case 1:
      return std::make_unique<dagvault::v1::CoordinatorConfig>();
    case 2:
      return std::make_unique<dagvault::v1::MailstoredConfig>();
    case 3:
      return std::make_unique<dagvault::v1::UnitConfig>();
    case 4:
      return std::make_unique<dagvault::v1::CopyStateFile>();
    case 5:
      return std::make_unique<dagvault::v1::FencingTokensFile>();
    default:
      return std::make_unique<dagvault::v1::ReplicaState>();
  }
}

}  // namespace

int FuzzTextConfig(const uint8_t* data, size_t size) {
  if (size < 1 || size > (64 << 10)) return 0;
  auto config = NewConfig(data[0]);
  const absl::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (!ParseTextConfig(text, "fuzz.conf", config.get()).ok()) return 0;
  const std::string printed = ToTextConfig(*config);
  auto again = NewConfig(data[0]);
  FUZZ_CHECK(ParseTextConfig(printed, "printed.conf", again.get()).ok());
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*config, *again));
  return 0;
}

}  // namespace dagvault::fuzz

DAGVAULT_FUZZ_TARGET(FuzzTextConfig)
