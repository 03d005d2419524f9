// tls_idle_buffers.h: gRPC's TLS connections in this process get
// SSL_MODE_RELEASE_BUFFERS from the SSL_new this test links, and messages
// far larger than a record still cross them intact in both directions,
// over mutual TLS on a real socket, with idle pauses between them.
#include "common/tls_idle_buffers.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <thread>

#include "common/certs.h"
#include "common/testing/temp_dir.h"
#include "common/tls.h"
#include "dagvault/v1/writer.grpc.pb.h"

namespace dagvault {
namespace {

namespace v1 = dagvault::v1;

TEST(TlsIdleBuffers, AnSslObjectIsCreatedWithTheMode) {
  SSL_CTX* context = SSL_CTX_new(TLS_method());
  ASSERT_NE(context, nullptr);
  const uint64_t before = SslObjectsReleasingIdleBuffers();
  SSL* ssl = SSL_new(context);
  ASSERT_NE(ssl, nullptr);
  EXPECT_NE(SSL_get_mode(ssl) & SSL_MODE_RELEASE_BUFFERS, 0u);
  EXPECT_EQ(SslObjectsReleasingIdleBuffers(), before + 1);
  SSL_free(ssl);
  SSL_CTX_free(context);
}

// Answers PrepareBackup with the reverse of the request's unit, so each
// direction carries a different large message.
class Mirror final : public v1::Writer::Service {
  grpc::Status PrepareBackup(grpc::ServerContext*, const v1::PrepareBackupRequest* request,
                             v1::PrepareBackupResponse* response) override {
    response->set_session(std::string(request->unit().rbegin(), request->unit().rend()));
    return grpc::Status::OK;
  }
};

TEST(TlsIdleBuffers, GrpcConnectionsUseItAndCarryLargeMessagesBothWays) {
  testing::TempDir certs("tls_idle_buffers");
  ASSERT_TRUE(CreateCa({.dir = certs.path()}).ok());
  ASSERT_TRUE(IssueCertificate({.dir = certs.path(),
                                .name = "coordinator",
                                .role = kRoleCoordinator,
                                .sans = {"127.0.0.1"}})
                  .ok());
  ASSERT_TRUE(IssueCertificate({.dir = certs.path(), .name = "node1", .role = kRoleNode}).ok());
  const uint64_t before = SslObjectsReleasingIdleBuffers();

  auto server_credentials =
      MakeServerCredentials(CertificateFiles(certs.path(), "coordinator"), false, "test");
  ASSERT_TRUE(server_credentials.ok()) << server_credentials.status();
  Mirror service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", *server_credentials, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  auto channel_credentials = MakeChannelCredentials(CertificateFiles(certs.path(), "node1"), false,
                                                    "test", {.role = kRoleCoordinator});
  ASSERT_TRUE(channel_credentials.ok()) << channel_credentials.status();
  auto stub = v1::Writer::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), *channel_credentials));
  for (const size_t size :
       {size_t{1}, size_t{100}, size_t{16'000}, size_t{70'000}, size_t{3'000'000}, size_t{5}}) {
    std::string unit(size, '\0');
    for (size_t i = 0; i < size; ++i) unit[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
    v1::PrepareBackupRequest request;
    request.set_unit(unit);
    v1::PrepareBackupResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    const grpc::Status status = stub->PrepareBackup(&context, request, &response);
    ASSERT_TRUE(status.ok()) << size << " bytes: " << status.error_message();
    ASSERT_EQ(response.session(), std::string(unit.rbegin(), unit.rend())) << size << " bytes";
    // Idle between calls, as an agent is between reports: the buffers are
    // released, and the next message needs them again.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The client's and the server's end of the connection, at least.
  EXPECT_GE(SslObjectsReleasingIdleBuffers(), before + 2);
  server->Shutdown();
}

}  // namespace
}  // namespace dagvault
