#include "coordinator/cli/leader_finder.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "dagvault/v1/admin.grpc.pb.h"

namespace dagvault::cli {
namespace {

namespace v1 = dagvault::v1;

// A coordinator that answers WhoLeads only, as configured.
class FakeCoordinator : public v1::CoordinatorAdmin::Service {
 public:
  explicit FakeCoordinator(grpc::Status answer, v1::LeaderInfo info = {})
      : answer_(std::move(answer)), info_(std::move(info)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeCoordinator() override { server_->Shutdown(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  grpc::Status WhoLeads(grpc::ServerContext*, const v1::WhoLeadsRequest*,
                        v1::LeaderInfo* info) override {
    *info = info_;
    return answer_;
  }

 private:
  grpc::Status answer_;
  v1::LeaderInfo info_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A port whose TCP handshake completes and which then never says a word:
// what a paused coordinator (SIGSTOP, a stalled VM) looks like.
class HungPort {
 public:
  HungPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), len), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin_port);
  }
  ~HungPort() { close(fd_); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

v1::LeaderInfo Leads(bool this_one, const std::string& leader) {
  v1::LeaderInfo info;
  info.set_this_one(this_one);
  info.set_leader(leader);
  return info;
}

TEST(FindLeader, AHungCoordinatorDoesNotDelayTheAnswerOfAnother) {
  HungPort paused;
  // The leader's own answer, and a standby's pointer to it.
  FakeCoordinator leads(grpc::Status::OK, Leads(true, ""));
  FakeCoordinator points(grpc::Status::OK, Leads(false, leads.address()));
  for (const auto& addresses : {std::vector<std::string>{paused.address(), leads.address()},
                                std::vector<std::string>{paused.address(), points.address()}}) {
    const auto started = std::chrono::steady_clock::now();
    auto found = FindLeader(addresses, grpc::InsecureChannelCredentials(), absl::Seconds(60));
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ(*found, leads.address());
    // Far inside the 60 s a sequential probe would have waited on the
    // paused one.
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  }
}

TEST(FindLeader, NoDecisiveAnswerNamesWhatEachAddressSaid) {
  HungPort paused;
  FakeCoordinator waiting(grpc::Status::OK, Leads(false, ""));
  std::vector<std::string> standbys;
  auto found = FindLeader({paused.address(), waiting.address()}, grpc::InsecureChannelCredentials(),
                          absl::Milliseconds(1500), &standbys);
  ASSERT_FALSE(found.ok());
  // The standby that answered, for commands that only read the catalog.
  EXPECT_EQ(standbys, std::vector<std::string>{waiting.address()});
  EXPECT_EQ(found.status().code(), absl::StatusCode::kUnavailable);
  const std::string message(found.status().message());
  EXPECT_NE(message.find(paused.address()), std::string::npos) << message;
  EXPECT_NE(message.find(waiting.address() + ": stands by, and no coordinator leads yet"),
            std::string::npos)
      << message;
}

TEST(FindLeader, ACoordinatorThatRefusesTheQuestionIsCalledSoThatTheCommandSaysWhy) {
  HungPort paused;
  FakeCoordinator refuses(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "not an admin"));
  auto found = FindLeader({paused.address(), refuses.address()}, grpc::InsecureChannelCredentials(),
                          absl::Seconds(60));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, refuses.address());
}

TEST(LeaderNamedIn, ReadsTheLeaderFromAStandbysRefusalOnly) {
  EXPECT_EQ(LeaderNamedIn(absl::UnavailableError(
                "backup start: this coordinator is a standby; the leader is at 10.1.2.3:7000")),
            "10.1.2.3:7000");
  EXPECT_EQ(LeaderNamedIn(absl::UnavailableError(
                "this coordinator is a standby and no coordinator leads yet; try again")),
            std::nullopt);
  EXPECT_EQ(LeaderNamedIn(absl::FailedPreconditionError("the leader is at 10.1.2.3:7000")),
            std::nullopt);
  EXPECT_EQ(LeaderNamedIn(absl::UnavailableError("the leader is at ")), std::nullopt);
}

}  // namespace
}  // namespace dagvault::cli
