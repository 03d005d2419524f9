#include "mailstore/server/config.h"

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "common/text_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mailstore/server/lab_config.h"

namespace dagvault::mailstore {
namespace {

using ::testing::HasSubstr;

dagvault::v1::MailstoredConfig LabNode1() {
  LabSpec spec;
  spec.root = "/srv/lab";
  auto lab = MakeLab(spec);
  EXPECT_TRUE(lab.ok()) << lab.status();
  return (*lab)[0].config;
}

std::string Problems(const dagvault::v1::MailstoredConfig& proto) {
  auto config = ValidateNodeConfig(proto, "node1.conf");
  EXPECT_FALSE(config.ok());
  return config.ok() ? "" : std::string(config.status().message());
}

TEST(NodeConfig, TheLabConfigurationIsValidAndHasDefaults) {
  auto config = ValidateNodeConfig(LabNode1(), "node1.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->freeze_timeout, absl::Seconds(20));
  EXPECT_EQ(config->checkpoint_depth, 1u);
  EXPECT_EQ(config->LocalUnits().size(), 2u);
  const auto* sg = config->FindUnit("SG01");
  ASSERT_NE(sg, nullptr);
  EXPECT_EQ(config->InitialActive(*sg).node(), "node1");
  EXPECT_EQ(config->UnitDir("SG01"), "/srv/lab/node1/data/SG01");
  EXPECT_EQ(config->EngineConfig(*sg).log_dir(), "/srv/lab/node1/data/SG01/logs");
  EXPECT_EQ(config->EngineConfig(*sg).databases_size(), 2);
}

TEST(NodeConfig, AMissingFieldIsNamed) {
  auto proto = LabNode1();
  proto.clear_writer_socket();
  EXPECT_THAT(Problems(proto), HasSubstr("node1.conf: field 'writer_socket' is required"));
  proto = LabNode1();
  proto.mutable_units(1)->clear_copies();
  EXPECT_THAT(Problems(proto), HasSubstr("'units[1].copies' is required"));
  proto = LabNode1();
  proto.mutable_units(0)->clear_mode();
  EXPECT_THAT(Problems(proto), HasSubstr("'units[0].mode' is required"));
}

TEST(NodeConfig, ReplicationNeedsMutualTlsOrAnExplicitInsecureDev) {
  auto proto = LabNode1();  // a lab without certificates: insecure_dev
  ASSERT_TRUE(proto.insecure_dev());
  proto.set_insecure_dev(false);
  EXPECT_THAT(Problems(proto),
              HasSubstr("field 'replication_tls': replication between nodes needs mutual TLS"));
  EXPECT_THAT(Problems(proto), HasSubstr("dagvault certs issue --role node --name node1"));
  proto.mutable_replication_tls()->set_ca_file("/etc/dagvault/ca.crt");
  proto.mutable_replication_tls()->set_cert_file("/etc/dagvault/node1.crt");
  EXPECT_THAT(Problems(proto), HasSubstr("field 'replication_tls.key_file' is missing"));
  proto.mutable_replication_tls()->set_key_file("/etc/dagvault/node1.key");
  EXPECT_TRUE(ValidateNodeConfig(proto, "node1.conf").ok());
  LabSpec spec;
  spec.root = "/srv/lab";
  spec.certs_dir = "/srv/certs";
  auto lab = MakeLab(spec);
  ASSERT_TRUE(lab.ok());
  EXPECT_FALSE((*lab)[1].config.insecure_dev());
  EXPECT_EQ((*lab)[1].config.replication_tls().cert_file(), "/srv/certs/node2.crt");
}

TEST(NodeConfig, InvalidFieldsAreNamed) {
  auto proto = LabNode1();
  proto.mutable_units(0)->mutable_copies(2)->set_node("node9");
  EXPECT_THAT(Problems(proto),
              HasSubstr("field 'units[0].copies[2].node': node \"node9\" is neither this node"));

  proto = LabNode1();
  proto.mutable_units(1)->mutable_copies(1)->set_node("node1");
  EXPECT_THAT(Problems(proto),
              HasSubstr("'units[1].copies[1].node': node \"node1\" has two copies"));

  proto = LabNode1();
  proto.mutable_units(1)->set_name("SG01");
  EXPECT_THAT(Problems(proto), HasSubstr("'units[1].name': \"SG01\" is used twice"));

  proto = LabNode1();
  proto.mutable_units(1)->add_databases("DB02B");  // database mode: one only
  EXPECT_THAT(Problems(proto), HasSubstr("units[1]"));
  EXPECT_THAT(Problems(proto), HasSubstr("exactly one database"));

  proto = LabNode1();
  proto.mutable_units(0)->set_log_prefix("E0/");
  EXPECT_THAT(Problems(proto), HasSubstr("units[0]"));

  proto = LabNode1();
  proto.set_data_root("relative/data");
  EXPECT_THAT(Problems(proto),
              HasSubstr("'data_root': \"relative/data\" must be an absolute path"));

  proto = LabNode1();
  proto.set_store_listen("7101");
  EXPECT_THAT(Problems(proto), HasSubstr("'store_listen': \"7101\" must be HOST:PORT"));

  proto = LabNode1();
  proto.mutable_peers(0)->set_node("node1");
  EXPECT_THAT(Problems(proto), HasSubstr("'peers[0].node': \"node1\" appears twice"));
}

TEST(NodeConfig, EveryProblemIsReportedAtOnce) {
  auto proto = LabNode1();
  proto.clear_node();
  proto.set_data_root("data");
  const std::string problems = Problems(proto);
  EXPECT_THAT(problems, HasSubstr("'node' is required"));
  EXPECT_THAT(problems, HasSubstr("'data_root'"));
}

TEST(NodeConfig, FileErrorsNameTheFileAndLine) {
  testing::TempDir dir("config");
  const std::string path = dir.Sub("node1.conf");
  ASSERT_TRUE(WriteFileAtomically(path, "node: \"node1\"\nfreeze_timeout: 5\n").ok());
  auto config = LoadNodeConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("freeze_timeout"));

  auto missing = LoadNodeConfig(dir.Sub("absent.conf"));
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("absent.conf"));

  ASSERT_TRUE(WriteFileAtomically(path, ToTextConfig(LabNode1())).ok());
  EXPECT_TRUE(LoadNodeConfig(path).ok());
}

}  // namespace
}  // namespace dagvault::mailstore
