// Roles and audit, end to end (issue 16 §3, docs/security.md): people's
// certificates of role viewer, operator and admin, issued by the real
// `dagvault certs`, against a real coordinator. Each may do what its role
// allows and is refused the rest, naming the role needed; a node's
// certificate is not a person's; every action and every refusal is in
// `dagvault audit list` with the caller, and a started job names who asked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;

// `dagvault ARGS` with the certificate `name` from the deployment's folder.
ProcessResult As(Deployment& d, const std::string& name, std::vector<std::string> args) {
  args.push_back("--cert-name");
  args.push_back(name);
  return d.Cli(args);
}

void Issue(Deployment& d, const std::string& name, const std::string& role) {
  ProcessResult r = RunProcess({BinaryPath("dagvault"), "certs", "issue", "--dir", d.certs(),
                                "--name", name, "--role", role});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(DeploymentAccess, EachRoleDoesWhatItMayIsRefusedTheRestAndTheAuditLogSaysWho) {
  Deployment d(Options(), "access");
  ASSERT_OK(d.Start());
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  Issue(d, "vera", "viewer");
  Issue(d, "otto", "operator");

  // A viewer reads, and may not start a backup.
  ProcessResult read = As(d, "vera", {"status"});
  EXPECT_EQ(read.exit_code, 0) << read.err;
  ProcessResult denied = As(d, "vera", {"backup", "start", "--unit", "DB02"});
  EXPECT_EQ(denied.exit_code, 1) << denied.out;
  EXPECT_THAT(denied.err,
              HasSubstr("StartBackup needs role operator or above; vera (viewer) has role viewer"));

  // Under --json the refusal is JSON on stdout, the exit code still 1.
  ProcessResult denied_json = As(d, "vera", {"backup", "start", "--unit", "DB02", "--json"});
  EXPECT_EQ(denied_json.exit_code, 1);
  EXPECT_THAT(denied_json.out, HasSubstr("\"code\":\"PERMISSION_DENIED\""));
  EXPECT_THAT(denied_json.out, HasSubstr("\"exit_code\":1"));
  // A flag of another command is a usage error naming it (exit 2).
  ProcessResult misplaced = As(d, "vera", {"status", "--wait"});
  EXPECT_EQ(misplaced.exit_code, 2);
  EXPECT_THAT(misplaced.err, HasSubstr("--wait"));

  // An operator starts a backup; the job says who asked for it.
  ProcessResult started =
      As(d, "otto", {"backup", "start", "--unit", "DB02", "--type", "full", "--wait"});
  ASSERT_EQ(started.exit_code, 0) << started.out << started.err << d.CoordinatorLog();
  auto jobs = d.Cli({"job", "list", "--unit", "DB02", "--json"});
  v1::ListJobsResponse list;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(jobs.out, &list, options).ok());
  ASSERT_EQ(list.jobs_size(), 1);
  const std::string job = list.jobs(0).id();
  ProcessResult shown = As(d, "vera", {"job", "show", job});
  EXPECT_THAT(shown.out, HasSubstr("requested by otto (operator) through the admin API"));

  // ... and may not change a policy: that is an admin's.
  ProcessResult policy =
      As(d, "otto", {"policy", "set", "--name", "p", "--unit", "DB02", "--full", "0 1 * * *"});
  EXPECT_EQ(policy.exit_code, 1);
  EXPECT_THAT(policy.err, HasSubstr("SetPolicy needs role admin or above"));
  ProcessResult admin_policy =
      d.Cli({"policy", "set", "--name", "p", "--unit", "DB02", "--full", "0 1 * * *"});
  EXPECT_EQ(admin_policy.exit_code, 0) << admin_policy.err;

  // A node's certificate is a machine's, not a person's.
  ProcessResult node = As(d, "node1", {"status"});
  EXPECT_EQ(node.exit_code, 1);
  EXPECT_THAT(node.err, HasSubstr("needs a person's certificate"));
  EXPECT_THAT(node.err, HasSubstr("node1 (node)"));

  // The audit log: the actions with their callers and results, and the
  // refusals; reads are not in it. A viewer may read it.
  ProcessResult audit = As(d, "vera", {"audit", "list", "--json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  v1::ListAuditResponse entries;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(audit.out, &entries, options).ok())
      << audit.out;
  auto find = [&](const std::string& who, const std::string& method) -> const v1::AuditEntry* {
    for (const auto& e : entries.entries()) {
      if (e.identity() == who && e.method() == method) return &e;
    }
    return nullptr;
  };
  const v1::AuditEntry* backup = find("otto", "StartBackup");
  ASSERT_NE(backup, nullptr) << audit.out;
  EXPECT_TRUE(backup->allowed());
  EXPECT_EQ(backup->result(), "OK");
  EXPECT_EQ(backup->role(), "operator");
  EXPECT_EQ(backup->target(), "DB02");
  EXPECT_EQ(backup->message(), "job " + job);
  EXPECT_THAT(backup->request(), HasSubstr("\"type\":\"FULL\""));
  const v1::AuditEntry* refused = find("vera", "StartBackup");
  ASSERT_NE(refused, nullptr) << audit.out;
  EXPECT_FALSE(refused->allowed());
  EXPECT_EQ(refused->result(), "PERMISSION_DENIED");
  ASSERT_NE(find("otto", "SetPolicy"), nullptr);
  EXPECT_FALSE(find("otto", "SetPolicy")->allowed());
  ASSERT_NE(find("admin", "SetPolicy"), nullptr);
  EXPECT_TRUE(find("admin", "SetPolicy")->allowed());
  ASSERT_NE(find("node1", "GetStatus"), nullptr);
  EXPECT_EQ(find("vera", "GetStatus"), nullptr);  // reads are not recorded

  ProcessResult veras = d.Cli({"audit", "list", "--identity", "vera"});
  EXPECT_EQ(veras.exit_code, 0) << veras.err;
  EXPECT_THAT(veras.out, HasSubstr("REFUSED: StartBackup needs role operator"));
  EXPECT_THAT(veras.out, ::testing::Not(HasSubstr("otto")));

  // The events carry stable ids in the coordinator's log.
  EXPECT_THAT(d.CoordinatorLog(), HasSubstr("[DV1007 access_refused identity=vera"));
  EXPECT_THAT(d.CoordinatorLog(), HasSubstr("[DV1008 admin_action identity=otto"));
}

}  // namespace
}  // namespace dagvault::testing
