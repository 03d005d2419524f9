#include "coordinator/cli/admin_commands.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dagvault/v1/admin.grpc.pb.h"

namespace dagvault::cli {
namespace {

namespace v1 = dagvault::v1;

// A fake coordinator's service served in plain text on 127.0.0.1: a
// member of the fake, started once the fake is whole.
class LoopbackServer {
 public:
  explicit LoopbackServer(grpc::Service* service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
  }
  ~LoopbackServer() { server_->Shutdown(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A coordinator that answers `status` with what it is given.
class StatusServer : public v1::CoordinatorAdmin::Service {
 public:
  explicit StatusServer(v1::ClusterStatus answer) : answer_(std::move(answer)) {}
  std::string address() const { return server_.address(); }

  grpc::Status GetStatus(grpc::ServerContext*, const v1::ClusterStatusRequest*,
                         v1::ClusterStatus* out) override {
    *out = answer_;
    return grpc::Status::OK;
  }

 private:
  v1::ClusterStatus answer_;
  LoopbackServer server_{this};
};

TEST(StatusCommand, EveryCopyOfALargeDeploymentIsShownPastGrpcsDefaultLimit) {
  // 10,000 nodes with 30 copies each answer about 16 MB; gRPC's default
  // limit for what a client takes is 4 MB.
  v1::ClusterStatus status;
  for (int n = 0; n < 600; ++n) {
    for (int u = 0; u < 30; ++u) {
      v1::CopyStatus* c = status.add_copies()->mutable_status();
      c->set_unit(absl::StrFormat("unit-%06d-%s", n * 30 + u, std::string(200, 'x')));
      c->set_node(absl::StrFormat("node-%05d", n));
      c->set_role(v1::PASSIVE);
      c->set_state(v1::HEALTHY);
    }
  }
  status.set_copies_total(static_cast<uint32_t>(status.copies_size()));
  ASSERT_GT(status.ByteSizeLong(), 4u << 20);
  StatusServer server(status);
  std::ostringstream out, err;
  EXPECT_EQ(
      RunAdminCommand({"status", "--copies", "--coordinator", server.address(), "--insecure-dev"},
                      out, err),
      0)
      << err.str();
  EXPECT_NE(out.str().find(absl::StrFormat("unit-%06d-", 600 * 30 - 1)), std::string::npos);
}

// What `dagvault status` prints when the coordinator answers `status`.
std::string StatusOutput(const v1::ClusterStatus& status) {
  StatusServer server(status);
  std::ostringstream out, err;
  EXPECT_EQ(
      RunAdminCommand({"status", "--coordinator", server.address(), "--insecure-dev"}, out, err), 0)
      << err.str();
  return out.str();
}

TEST(StatusCommand, NodesThatReportAreCountedAndThoseThatDoNotAreListed) {
  v1::ClusterStatus status;
  status.set_nodes_total(10000);
  status.set_nodes_reporting(9998);
  for (const char* name : {"node00042", "node00077"}) {
    v1::NodeInfo* n = status.add_nodes();
    n->set_node(name);
    n->set_down_reason("its agent is not connected: ServiceDown");
  }
  const std::string out = StatusOutput(status);
  EXPECT_NE(out.find("node00077"), std::string::npos) << out;
  EXPECT_NE(out.find("its agent is not connected: ServiceDown"), std::string::npos);
  EXPECT_NE(out.find("nodes: 9998 of 10000 reporting; 9998 of those not listed (--nodes "
                     "lists every node)"),
            std::string::npos)
      << out;
}

TEST(StatusCommand, ACoordinatorThatDoesNotCountNodesHasThemCountedFromItsList) {
  // Older coordinators list every node and send no counts.
  v1::ClusterStatus status;
  for (bool reporting : {true, true, false}) {
    v1::NodeInfo* n = status.add_nodes();
    n->set_node(absl::StrCat("node", status.nodes_size()));
    n->set_reporting(reporting);
  }
  const std::string out = StatusOutput(status);
  EXPECT_NE(out.find("nodes: 2 of 3 reporting\n"), std::string::npos) << out;
}

// A standby while no coordinator leads: it says so when asked who leads,
// answers catalog reads, and refuses the rest as the real one does.
class StandbyWithoutLeader : public v1::CoordinatorAdmin::Service {
 public:
  std::string address() const { return server_.address(); }

  grpc::Status WhoLeads(grpc::ServerContext*, const v1::WhoLeadsRequest*,
                        v1::LeaderInfo* out) override {
    out->set_this_address(address());
    out->set_no_leader_reason("etcd does not answer");
    return grpc::Status::OK;
  }
  grpc::Status ListBackups(grpc::ServerContext*, const v1::ListBackupsRequest* request,
                           v1::ListBackupsResponse* out) override {
    v1::CatalogBackup* b = out->add_backups();
    b->set_manifest("backup-of-" + request->unit());
    b->set_unit(request->unit());
    return grpc::Status::OK;
  }
  grpc::Status StartBackup(grpc::ServerContext*, const v1::StartBackupRequest*,
                           v1::JobInfo*) override {
    starts_++;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "this coordinator is a standby and cannot tell who leads");
  }
  int starts() const { return starts_; }

 private:
  std::atomic<int> starts_{0};
  LoopbackServer server_{this};
};

TEST(AdminCommands, WithNoLeaderACatalogReadGoesToAStandbyAndSaysSo) {
  StandbyWithoutLeader standby;
  // The leader's address refuses connections: it is down.
  const std::string addresses = "127.0.0.1:1," + standby.address();
  std::ostringstream out, err;
  EXPECT_EQ(RunAdminCommand({"backup", "list", "--unit", "DB02", "--json", "--coordinator",
                             addresses, "--insecure-dev"},
                            out, err),
            0)
      << err.str();
  EXPECT_NE(out.str().find("backup-of-DB02"), std::string::npos) << out.str();
  EXPECT_NE(err.str().find("no coordinator leads"), std::string::npos) << err.str();
  EXPECT_NE(
      err.str().find("reading the shared catalog through the standby at " + standby.address()),
      std::string::npos)
      << err.str();
}

TEST(AdminCommands, WithNoLeaderACommandThatActsIsRefusedWithoutCallingAStandby) {
  StandbyWithoutLeader standby;
  std::ostringstream out, err;
  EXPECT_EQ(RunAdminCommand({"backup", "start", "--unit", "DB02", "--type", "full", "--coordinator",
                             "127.0.0.1:1," + standby.address(), "--insecure-dev"},
                            out, err),
            1);
  EXPECT_NE(err.str().find("no coordinator leads"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("etcd does not answer"), std::string::npos) << err.str();
  EXPECT_EQ(err.str().find("reading the shared catalog"), std::string::npos) << err.str();
  EXPECT_EQ(standby.starts(), 0);
}

}  // namespace
}  // namespace dagvault::cli
