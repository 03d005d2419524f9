// TlsFront: real gRPC clients over real mutual TLS on a real socket reach a
// gRPC server that has no port of its own; the server learns who called
// from the front; messages of every size cross intact both ways, and so do
// records that arrive together with the handshake's last; and every
// connection the handshake cannot authenticate is refused before gRPC sees
// a byte of it.
#include "common/tls_front.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "common/certs.h"
#include "common/testing/network_lab.h"
#include "common/testing/temp_dir.h"
#include "common/tls.h"
#include "dagvault/v1/writer.grpc.pb.h"

namespace dagvault {
namespace {

namespace v1 = dagvault::v1;

// Answers PrepareBackup with the reverse of the request's unit (each
// direction carries a different message) and notes who called.
class Mirror final : public v1::Writer::Service {
 public:
  const TlsFront* front = nullptr;

  grpc::Status PrepareBackup(grpc::ServerContext* context, const v1::PrepareBackupRequest* request,
                             v1::PrepareBackupResponse* response) override {
    std::optional<PeerIdentity> who = front->IdentityOf(context->peer());
    {
      std::lock_guard<std::mutex> l(mu);
      caller = who;
      peer = context->peer();
    }
    response->set_session(std::string(request->unit().rbegin(), request->unit().rend()));
    return grpc::Status::OK;
  }

  std::mutex mu;
  std::optional<PeerIdentity> caller;
  std::string peer;
};

class TlsFrontTest : public ::testing::Test {
 protected:
  // The front's count of refused handshakes once it reaches `want`, or
  // after 5 s: the client can see its handshake fail a moment before the
  // front's thread has counted the refusal.
  uint64_t WaitForRefusals(uint64_t want) {
    for (int i = 0; i < 500 && front_->handshakes_refused() < want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return front_->handshakes_refused();
  }
  void SetUp() override {
    ASSERT_TRUE(CreateCa({.dir = certs_.path()}).ok());
    ASSERT_TRUE(IssueCertificate({.dir = certs_.path(),
                                  .name = "coordinator",
                                  .role = kRoleCoordinator,
                                  .sans = {"127.0.0.1"}})
                    .ok());
    ASSERT_TRUE(IssueCertificate({.dir = certs_.path(), .name = "node1", .role = kRoleNode}).ok());
    grpc::ServerBuilder builder;
    // As the coordinator's port (coordinator.cc): no bandwidth-delay
    // probes, so HTTP/2's window stays at 64 KB.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    auto front = TlsFront::Start({.listen = "127.0.0.1:0",
                                  .tls = CertificateFiles(certs_.path(), "coordinator"),
                                  .handshake_timeout = absl::Seconds(1)},
                                 server_->c_server());
    ASSERT_TRUE(front.ok()) << front.status();
    front_ = std::move(*front);
    service_.front = front_.get();
    address_ = "127.0.0.1:" + std::to_string(front_->port());
  }

  void TearDown() override {
    front_.reset();
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  // A plain TCP connection to the front whose reads give up after 10 s;
  // -1 if it does not connect.
  int ConnectToFront() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(front_->port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(fd);
      return -1;
    }
    timeval wait{.tv_sec = 10, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
    return fd;
  }

  // One PrepareBackup through `credentials`, its unit `size` bytes.
  grpc::Status Call(const std::shared_ptr<grpc::ChannelCredentials>& credentials, size_t size,
                    std::string* sent = nullptr, std::string* answer = nullptr,
                    const grpc::ChannelArguments& args = {}) {
    auto stub = v1::Writer::NewStub(grpc::CreateCustomChannel(address_, credentials, args));
    std::string unit(size, '\0');
    for (size_t i = 0; i < size; ++i) unit[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
    v1::PrepareBackupRequest request;
    request.set_unit(unit);
    v1::PrepareBackupResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    grpc::Status s = stub->PrepareBackup(&context, request, &response);
    if (sent) *sent = unit;
    if (answer) *answer = response.session();
    return s;
  }

  std::shared_ptr<grpc::ChannelCredentials> NodeCredentials() {
    auto c = MakeChannelCredentials(CertificateFiles(certs_.path(), "node1"), false, "test",
                                    {.role = kRoleCoordinator});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : nullptr;
  }

  testing::TempDir certs_{"tls_front"};
  Mirror service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<TlsFront> front_;
  std::string address_;
};

TEST_F(TlsFrontTest, TheServerLearnsWhoCalledFromTheFront) {
  ASSERT_TRUE(Call(NodeCredentials(), 10).ok());
  std::lock_guard<std::mutex> l(service_.mu);
  ASSERT_TRUE(service_.caller.has_value()) << "peer " << service_.peer;
  EXPECT_TRUE(service_.caller->authenticated);
  EXPECT_EQ(service_.caller->common_name, "node1");
  EXPECT_EQ(service_.caller->role, kRoleNode);
  EXPECT_EQ(service_.peer.rfind("fd:", 0), 0u) << service_.peer;
  EXPECT_EQ(front_->IdentityOf("ipv4:127.0.0.1:5000"), std::nullopt);
  EXPECT_EQ(front_->IdentityOf("fd:x"), std::nullopt);
}

// With no bandwidth-delay probes at either end, as between agents and the
// coordinator (coordinator_channel_args.h): messages far over HTTP/2's
// 64 KB window still pass.
TEST_F(TlsFrontTest, MessagesOfEverySizeCrossIntactBothWays) {
  auto credentials = NodeCredentials();
  grpc::ChannelArguments no_probes;
  no_probes.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  for (const size_t size : {size_t{1}, size_t{100}, size_t{16'000}, size_t{16'384}, size_t{70'000},
                            size_t{3'000'000}, size_t{5}}) {
    std::string sent, answer;
    grpc::Status s = Call(credentials, size, &sent, &answer, no_probes);
    ASSERT_TRUE(s.ok()) << size << ": " << s.error_message();
    ASSERT_EQ(answer, std::string(sent.rbegin(), sent.rend())) << size;
  }
}

TEST_F(TlsFrontTest, ManyCallsAtOnceOnManyConnections) {
  std::vector<std::thread> callers;
  std::atomic<int> fine{0};
  for (int t = 0; t < 8; ++t) {
    callers.emplace_back([&, t] {
      auto credentials = NodeCredentials();
      for (int i = 0; i < 20; ++i) {
        std::string sent, answer;
        if (Call(credentials, static_cast<size_t>(1000 * (t + 1) + 37 * i), &sent, &answer).ok() &&
            answer == std::string(sent.rbegin(), sent.rend())) {
          ++fine;
        }
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(fine.load(), 160);
}

TEST_F(TlsFrontTest, AClientWithoutACertificateIsRefusedInTheHandshake) {
  auto pems = LoadTlsPems(CertificateFiles(certs_.path(), "node1"), "test");
  ASSERT_TRUE(pems.ok()) << pems.status();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = pems->ca;  // trusts the server, presents nothing
  grpc::Status s = Call(grpc::SslCredentials(options), 10);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_GE(WaitForRefusals(1), 1u);
  std::lock_guard<std::mutex> l(service_.mu);
  EXPECT_FALSE(service_.caller.has_value());
}

TEST_F(TlsFrontTest, ACertificateOfAnotherCaIsRefusedInTheHandshake) {
  testing::TempDir other("tls_front_other");
  ASSERT_TRUE(CreateCa({.dir = other.path()}).ok());
  ASSERT_TRUE(IssueCertificate({.dir = other.path(), .name = "node1", .role = kRoleNode}).ok());
  auto mine = LoadTlsPems(CertificateFiles(certs_.path(), "node1"), "test");
  auto theirs = LoadTlsPems(CertificateFiles(other.path(), "node1"), "test");
  ASSERT_TRUE(mine.ok() && theirs.ok());
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = mine->ca;      // trusts the server...
  options.pem_cert_chain = theirs->cert;  // ...but is another deployment's node
  options.pem_private_key = theirs->key;
  grpc::Status s = Call(grpc::SslCredentials(options), 10);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_GE(WaitForRefusals(1), 1u);
  std::lock_guard<std::mutex> l(service_.mu);
  EXPECT_FALSE(service_.caller.has_value());
}

TEST_F(TlsFrontTest, PlainTextIsRefused) {
  grpc::Status s = Call(grpc::InsecureChannelCredentials(), 10);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  std::lock_guard<std::mutex> l(service_.mu);
  EXPECT_FALSE(service_.caller.has_value());
}

TEST_F(TlsFrontTest, AConnectionThatNeverShakesHandsIsClosedAfterTheTimeout) {
  const int fd = ConnectToFront();
  ASSERT_GE(fd, 0) << std::strerror(errno);
  char byte;
  const absl::Time start = absl::Now();
  EXPECT_EQ(::recv(fd, &byte, 1, 0), 0) << "the front should close it (EOF)";
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));
  ::close(fd);
  EXPECT_GE(WaitForRefusals(1), 1u);
}

TEST_F(TlsFrontTest, AClosedConnectionIsNoLongerCounted) {
  {
    auto stub = v1::Writer::NewStub(grpc::CreateChannel(address_, NodeCredentials()));
    v1::PrepareBackupRequest request;
    v1::PrepareBackupResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->PrepareBackup(&context, request, &response).ok());
    EXPECT_EQ(front_->connections(), 1u);
  }  // the channel and its connection close
  for (int i = 0; i < 100 && front_->connections() != 0; ++i)
    absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(front_->connections(), 0u);
}

TEST_F(TlsFrontTest, AfterStopAcceptingOpenConnectionsCarryOnAndNewOnesAreNotTaken) {
  auto stub = v1::Writer::NewStub(grpc::CreateChannel(address_, NodeCredentials()));
  auto call = [&stub] {
    v1::PrepareBackupRequest request;
    request.set_unit("abc");
    v1::PrepareBackupResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return stub->PrepareBackup(&context, request, &response);
  };
  ASSERT_TRUE(call().ok());
  front_->StopAccepting();
  // The listener closes on the front's thread, at its next wake-up.
  bool closed = false;
  for (int i = 0; i < 100 && !closed; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(front_->port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    closed = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0;
    ::close(fd);
    if (!closed) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(closed) << "the port still accepts";
  EXPECT_TRUE(call().ok());
}

// The bytes an OpenSSL memory BIO holds, taken out of it.
std::string Drain(BIO* bio) {
  std::string out;
  char buf[4096];
  for (int n; (n = BIO_read(bio, buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

// One HTTP/2 frame: a 9-byte header (length, type, flags, stream 0) and
// its payload.
std::string Http2Frame(uint8_t type, uint8_t flags, const std::string& payload) {
  const size_t n = payload.size();
  std::string f = {static_cast<char>(n >> 16),
                   static_cast<char>(n >> 8),
                   static_cast<char>(n),
                   static_cast<char>(type),
                   static_cast<char>(flags),
                   0,
                   0,
                   0,
                   0};
  return f + payload;
}

// The front reads ahead: one read(2) may take the client's Finished and
// every record behind it, and epoll then has nothing more to report. A
// client by hand (OpenSSL on memory BIOs, so the test decides what goes
// in one TCP write) sends its last handshake flight, the HTTP/2 preface,
// 20 SETTINGS frames and a PING, each in a TLS record of its own, in one
// write. gRPC must see every one: it acknowledges each SETTINGS and
// answers the PING.
TEST_F(TlsFrontTest, EveryRecordThatArrivesWithTheClientsFinishedReachesGrpc) {
  const v1::TlsFiles node = CertificateFiles(certs_.path(), "node1");
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> owned_ctx(SSL_CTX_new(TLS_client_method()),
                                                              SSL_CTX_free);
  SSL_CTX* ctx = owned_ctx.get();
  ASSERT_EQ(SSL_CTX_use_certificate_chain_file(ctx, node.cert_file().c_str()), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx, node.key_file().c_str(), SSL_FILETYPE_PEM), 1);
  ASSERT_EQ(SSL_CTX_load_verify_locations(ctx, node.ca_file().c_str(), nullptr), 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  static const unsigned char kH2[] = {2, 'h', '2'};
  ASSERT_EQ(SSL_CTX_set_alpn_protos(ctx, kH2, sizeof(kH2)), 0);
  std::unique_ptr<SSL, decltype(&SSL_free)> owned_ssl(SSL_new(ctx), SSL_free);
  SSL* ssl = owned_ssl.get();
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);  // the SSL owns both
  SSL_set_connect_state(ssl);

  const int fd = ConnectToFront();
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::unique_ptr<const int, void (*)(const int*)> closes_fd(&fd,
                                                             [](const int* f) { ::close(*f); });
  auto send_all = [fd](const std::string& bytes) {
    return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  };
  char buf[16384];
  // TLS 1.3: the client is done once it has the server's Finished and has
  // written its own flight, which stays in `out`, unsent.
  for (int r; (r = SSL_do_handshake(ssl)) != 1;) {
    ASSERT_EQ(SSL_get_error(ssl, r), SSL_ERROR_WANT_READ);
    ASSERT_TRUE(send_all(Drain(out)));
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0) << "the front ended the handshake";
    BIO_write(in, buf, static_cast<int>(n));
  }
  auto seal = [ssl](const std::string& plain) {
    return SSL_write(ssl, plain.data(), static_cast<int>(plain.size())) ==
           static_cast<int>(plain.size());
  };
  ASSERT_TRUE(seal("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + Http2Frame(4, 0, "")));
  constexpr int kSettings = 20;
  for (int i = 0; i < kSettings; ++i) ASSERT_TRUE(seal(Http2Frame(4, 0, "")));
  ASSERT_TRUE(seal(Http2Frame(6, 0, "8 bytes!")));
  ASSERT_TRUE(send_all(Drain(out)));  // one write: the Finished and 22 records

  int settings_acks = 0;
  bool pinged_back = false;
  std::string plain;
  while (settings_acks < kSettings + 1 || !pinged_back) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;  // closed, or 10 s with nothing
    BIO_write(in, buf, static_cast<int>(n));
    for (int got; (got = SSL_read(ssl, buf, sizeof(buf))) > 0;) {
      plain.append(buf, static_cast<size_t>(got));
    }
    while (plain.size() >= 9) {
      const size_t length = (static_cast<uint8_t>(plain[0]) << 16) |
                            (static_cast<uint8_t>(plain[1]) << 8) | static_cast<uint8_t>(plain[2]);
      if (plain.size() < 9 + length) break;
      const uint8_t type = static_cast<uint8_t>(plain[3]), flags = static_cast<uint8_t>(plain[4]);
      if (type == 4 && (flags & 1)) ++settings_acks;
      if (type == 6 && (flags & 1) && plain.substr(9, length) == "8 bytes!") pinged_back = true;
      plain.erase(0, 9 + length);
    }
  }
  EXPECT_EQ(settings_acks, kSettings + 1);
  EXPECT_TRUE(pinged_back) << "no answer to the PING in the last record";
}

// A TCP socket of network namespace `netns`: a socket belongs to the
// namespace of the thread that makes it, so a thread enters it to make one.
int SocketIn(const std::string& netns) {
  int fd = -1;
  std::thread([&] {
    const int ns = ::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns >= 0 && ::setns(ns, CLONE_NEWNET) == 0) fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (ns >= 0) ::close(ns);
  }).join();
  return fd;
}

// An agent's machine lost without a reset (a pulled cable): no byte and no
// FIN ever comes again. The front's keepalive probes find it and the
// connection ends in about 20 s, with no HTTP/2 ping from gRPC.
TEST(TlsFrontDeadPeer, AConnectionWhosePeerVanishedIsClosedByTheKernelsProbes) {
  testing::NetworkLab lab(1);
  ASSERT_TRUE(lab.ok()) << lab.error();
  testing::TempDir certs("tls_front_dead_peer");
  ASSERT_TRUE(CreateCa({.dir = certs.path()}).ok());
  ASSERT_TRUE(IssueCertificate({.dir = certs.path(),
                                .name = "coordinator",
                                .role = kRoleCoordinator,
                                .sans = {lab.bridge_address()}})
                  .ok());
  ASSERT_TRUE(IssueCertificate({.dir = certs.path(), .name = "node1", .role = kRoleNode}).ok());
  Mirror service;
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto front = TlsFront::Start(
      {.listen = lab.bridge_address() + ":0", .tls = CertificateFiles(certs.path(), "coordinator")},
      server->c_server());
  ASSERT_TRUE(front.ok()) << front.status();

  // A client on host 0 shakes hands as node1 and then says nothing.
  const int fd = SocketIn(lab.Prefix(0).back());
  ASSERT_GE(fd, 0) << std::strerror(errno);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>((*front)->port()));
  ASSERT_EQ(::inet_pton(AF_INET, lab.bridge_address().c_str(), &a.sin_addr), 1);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
  const v1::TlsFiles node = CertificateFiles(certs.path(), "node1");
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ASSERT_EQ(SSL_CTX_use_certificate_chain_file(ctx, node.cert_file().c_str()), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx, node.key_file().c_str(), SSL_FILETYPE_PEM), 1);
  ASSERT_EQ(SSL_CTX_load_verify_locations(ctx, node.ca_file().c_str(), nullptr), 1);
  static const unsigned char kH2[] = {2, 'h', '2'};
  ASSERT_EQ(SSL_CTX_set_alpn_protos(ctx, kH2, sizeof(kH2)), 0);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  ASSERT_EQ(SSL_connect(ssl), 1);
  for (int i = 0; i < 100 && (*front)->connections() != 1; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ((*front)->connections(), 1u);

  ASSERT_TRUE(lab.Cut(0));
  const absl::Time cut = absl::Now();
  while ((*front)->connections() != 0 && absl::Now() - cut < absl::Seconds(45)) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ((*front)->connections(), 0u)
      << "a connection to a vanished peer is still open after 45 s";
  EXPECT_GE(absl::Now() - cut, absl::Seconds(9)) << "a quiet connection is not ended at once";
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  front->reset();
  server->Shutdown(std::chrono::system_clock::now());
}

TEST(TlsFrontStart, BadFilesAndAddressesAreNamed) {
  testing::TempDir certs("tls_front_bad");
  ASSERT_TRUE(CreateCa({.dir = certs.path()}).ok());
  ASSERT_TRUE(IssueCertificate({.dir = certs.path(),
                                .name = "coordinator",
                                .role = kRoleCoordinator,
                                .sans = {"127.0.0.1"}})
                  .ok());
  Mirror service;
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  v1::TlsFiles missing = CertificateFiles(certs.path(), "coordinator");
  missing.set_key_file(certs.path() + "/nope.key");
  auto no_key = TlsFront::Start({.listen = "127.0.0.1:0", .tls = missing}, server->c_server());
  EXPECT_FALSE(no_key.ok());
  EXPECT_NE(no_key.status().message().find("nope.key"), std::string::npos) << no_key.status();
  auto bad_address = TlsFront::Start(
      {.listen = "127.0.0.1:notaport", .tls = CertificateFiles(certs.path(), "coordinator")},
      server->c_server());
  EXPECT_FALSE(bad_address.ok());
  EXPECT_NE(bad_address.status().message().find("127.0.0.1:notaport"), std::string::npos)
      << bad_address.status();
  server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace dagvault
