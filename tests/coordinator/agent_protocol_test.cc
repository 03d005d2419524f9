// The agent protocol against a real coordinator through its TLS front, at
// the level of single messages (docs/ha.md, "How a dead link is found").
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "common/tls.h"
#include "dagvault/v1/agent.grpc.pb.h"
#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

namespace v1 = dagvault::v1;

// The agent protocol's report acknowledgements, through the real TLS front
// and coordinator: a report marked ack_optional that lists no running job
// is not acknowledged; every other report is, in order.
TEST(Deployment, TheCoordinatorSkipsOnlyTheAcknowledgementsAnAgentCanDoWithout) {
  Deployment d(Options(), "acks");
  ASSERT_OK(d.Start());
  d.KillAgent(kNode3);  // node3's stream is the test's
  v1::TlsFiles files;
  files.set_ca_file(d.certs() + "/ca.crt");
  files.set_cert_file(d.certs() + "/node3.crt");
  files.set_key_file(d.certs() + "/node3.key");
  auto credentials = MakeChannelCredentials(files, false, "test", {.role = kRoleCoordinator});
  ASSERT_OK(credentials.status());
  auto stub = v1::AgentService::NewStub(grpc::CreateChannel(d.coordinator_address(), *credentials));
  auto context = Deadline(absl::Seconds(60));
  auto stream = stub->Connect(context.get());
  v1::AgentMessage hello;
  hello.mutable_register_()->set_node("node3");
  ASSERT_TRUE(stream->Write(hello));
  v1::CoordinatorMessage answer;
  ASSERT_TRUE(stream->Read(&answer));
  ASSERT_TRUE(answer.has_registered()) << answer.ShortDebugString();

  auto report = [&](int64_t sent_us, bool ack_optional, bool running) {
    v1::AgentMessage m;
    m.mutable_report()->set_node("node3");
    m.mutable_report()->set_sent_us(sent_us);
    m.mutable_report()->set_ack_optional(ack_optional);
    if (running) {
      v1::RunningJob* j = m.mutable_report()->add_running();
      j->set_job("no-such-job");
      j->set_attempt(1);
      j->set_unit("DB02");
    }
    return stream->Write(m);
  };
  // The sent_us of the next acknowledgement (other messages skipped).
  auto next_ack = [&]() -> int64_t {
    v1::CoordinatorMessage m;
    while (stream->Read(&m)) {
      if (m.has_report_ack()) return m.report_ack().sent_us();
    }
    return -1;
  };
  ASSERT_TRUE(report(1, false, false));
  EXPECT_EQ(next_ack(), 1);
  // The optional one is skipped: the next acknowledgement is of report 3.
  ASSERT_TRUE(report(2, true, false));
  ASSERT_TRUE(report(3, false, false));
  EXPECT_EQ(next_ack(), 3);
  // A report listing a running job is acknowledged even when marked.
  ASSERT_TRUE(report(4, true, true));
  EXPECT_EQ(next_ack(), 4);
  context->TryCancel();
}

}  // namespace
}  // namespace dagvault::testing
