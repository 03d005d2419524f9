// Readiness with the real daemons (issue 16, deploy/systemd/): each of
// dagvault-coordinator, dagvault-agent and mailstored sends READY=1 over
// $NOTIFY_SOCKET once it serves, and STOPPING=1 when it is told to stop (the
// test's own datagram socket stands in for systemd's); the coordinator and
// mailstored answer gRPC's standard health check with SERVING.
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/certs.h"
#include "common/tls.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;

class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
    bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  bool ok() const { return bound_; }
  const std::string& path() const { return path_; }

  // The next message, or "" after `timeout`.
  std::string Receive(absl::Duration timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) != 1) return "";
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

TEST(Readiness, EachDaemonSaysReadyOnceItServesAndStoppingWhenStopped) {
  Deployment d(Options(), "ready");
  ASSERT_OK(d.Start());
  NotifySocket notify(d.cluster().root() + "/notify.sock");
  ASSERT_TRUE(notify.ok());
  const std::map<std::string, std::string> env = {{"NOTIFY_SOCKET", notify.path()}};

  // The coordinator: READY=1 once it listens; its admin API answers then.
  d.KillCoordinator();
  ASSERT_OK(d.StartCoordinator(env));
  const std::string coordinator = notify.Receive(absl::Seconds(20));
  EXPECT_THAT(coordinator, HasSubstr("READY=1"));
  EXPECT_THAT(coordinator, HasSubstr("STATUS=listening on " + d.coordinator_address()));
  // ... and the standard health service says SERVING (over its TLS port,
  // with any certificate of the deployment).
  auto credentials = MakeChannelCredentials(CertificateFiles(d.certs(), "admin"), false,
                                            "health check", ExpectedPeer{.role = kRoleCoordinator});
  ASSERT_OK(credentials.status());
  auto health =
      grpc::health::v1::Health::NewStub(grpc::CreateChannel(d.coordinator_address(), *credentials));
  grpc::health::v1::HealthCheckResponse serving;
  grpc::Status checked = health->Check(Deadline(absl::Seconds(10)).get(),
                                       grpc::health::v1::HealthCheckRequest{}, &serving);
  ASSERT_TRUE(checked.ok()) << checked.error_message();
  EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // mailstored: READY=1 once it serves; STOPPING=1 at SIGTERM.
  (void)d.cluster().StopNode(kNode2);
  ASSERT_OK(d.cluster().StartNode(kNode2, {}, env));
  EXPECT_THAT(notify.Receive(absl::Seconds(20)), HasSubstr("READY=1\nSTATUS=node node2 serving"));
  EXPECT_EQ(d.cluster().StopNode(kNode2).exit_code, 0);
  EXPECT_THAT(notify.Receive(absl::Seconds(20)), HasSubstr("STOPPING=1"));
  ASSERT_OK(d.cluster().StartNode(kNode2));
  auto node_health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      d.cluster().node(kNode2).config.store_listen(), grpc::InsecureChannelCredentials()));
  grpc::health::v1::HealthCheckResponse node_serving;
  checked = node_health->Check(Deadline(absl::Seconds(10)).get(),
                               grpc::health::v1::HealthCheckRequest{}, &node_serving);
  ASSERT_TRUE(checked.ok()) << checked.error_message();
  EXPECT_EQ(node_serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // The agent: READY=1 once it runs, naming its node and coordinator.
  d.KillAgent(kNode3);
  ASSERT_OK(d.StartAgent(kNode3, env));
  EXPECT_THAT(notify.Receive(absl::Seconds(20)),
              HasSubstr("READY=1\nSTATUS=node node3, coordinator " + d.coordinator_address()));
  ASSERT_OK(d.WaitReporting());
}

}  // namespace
}  // namespace dagvault::testing
