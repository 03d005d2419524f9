#include "coordinator/cli/admin_commands.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dagvault/v1/admin.grpc.pb.h"

namespace dagvault::cli {
namespace {

namespace v1 = dagvault::v1;

// A coordinator that answers `status` with what it is given.
class StatusServer : public v1::CoordinatorAdmin::Service {
 public:
  explicit StatusServer(v1::ClusterStatus answer) : answer_(std::move(answer)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~StatusServer() override { server_->Shutdown(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  grpc::Status GetStatus(grpc::ServerContext*, const v1::ClusterStatusRequest*,
                         v1::ClusterStatus* out) override {
    *out = answer_;
    return grpc::Status::OK;
  }

 private:
  v1::ClusterStatus answer_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
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

}  // namespace
}  // namespace dagvault::cli
