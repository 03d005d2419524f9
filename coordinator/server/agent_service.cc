// AgentService: one stream per connected agent (proto/dagvault/v1/agent.proto).
// The agent's certificate names its node: it may register, report and
// update jobs for that node only.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/tls.h"
#include "coordinator/server/coordinator.h"
#include "coordinator/server/queued_channel.h"
#include "dagvault/v1/agent.grpc.pb.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using Stream = grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::AgentMessage>;

class AgentServiceImpl final : public v1::AgentService::Service {
 public:
  explicit AgentServiceImpl(Coordinator* c) : c_(c) {}

  grpc::Status Connect(grpc::ServerContext* context, Stream* stream) override {
    auto log = logging::Get("coordinator");
    // A standby points the agent to the leader before it reads a word.
    if (auto standby = c_->RedirectIfStandby(context)) return *standby;
    v1::AgentMessage first;
    if (!stream->Read(&first) || !first.has_register_()) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "an agent's first message must be Register"};
    }
    const v1::Register& hello = first.register_();
    const PeerIdentity peer = PeerOf(*context);
    if (!c_->config().insecure_dev()) {
      if (!peer.authenticated || peer.role != kRoleNode || peer.common_name != hello.node()) {
        const std::string why = absl::StrCat(
            "refused: the agent registers as node \"", hello.node(), "\" but its certificate is ",
            peer.Describe(), "; an agent may act only for the node its certificate names");
        log->warn("agent from {}: {}", context->peer(), why);
        return {grpc::StatusCode::PERMISSION_DENIED, why};
      }
    }
    if (hello.node().empty())
      return {grpc::StatusCode::INVALID_ARGUMENT, "Register: node is empty"};
    // Sends go through a queue and a writer thread of this stream's own:
    // no sender ever blocks on a slow agent (queued_channel.h). Closed
    // before the handler returns, while the stream is still valid.
    auto channel = std::make_shared<QueuedChannel>(
        [stream](const v1::CoordinatorMessage& m) { return stream->Write(m); },
        [context] { context->TryCancel(); });
    v1::CoordinatorMessage welcome;
    welcome.mutable_registered()->set_report_every_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(c_->report_every())));
    welcome.mutable_registered()->set_lease_ttl_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(c_->lease_ttl())));
    welcome.mutable_registered()->set_writer_session_timeout_ms(
        c_->config().writer_session_timeout_ms() != 0 ? c_->config().writer_session_timeout_ms()
                                                      : 60000);
    // The welcome goes first: the node's channel is published only then,
    // so no assignment can reach the agent before it.
    channel->Send(welcome);
    c_->topology().Connected(hello, channel);
    log->info("node {} connected (agent {}, run {})", hello.node(), hello.agent_version(),
              hello.incarnation());

    grpc::Status result = grpc::Status::OK;
    v1::AgentMessage m;
    while (stream->Read(&m)) {
      if (!c_->MayAct()) {
        // Leadership lost while the stream was open: the agent goes to the
        // new leader, which acts on its report instead.
        result = {grpc::StatusCode::UNAVAILABLE, "this coordinator no longer leads"};
        break;
      }
      if (m.has_report()) {
        if (m.report().node() != hello.node()) {
          result = {grpc::StatusCode::PERMISSION_DENIED,
                    absl::StrCat("refused: node ", hello.node(), " reported for node ",
                                 m.report().node())};
          break;
        }
        c_->topology().Report(m.report());
        c_->jobs().OnReport(m.report());
        v1::CoordinatorMessage ack;
        ack.mutable_report_ack()->set_sent_us(m.report().sent_us());
        channel->Send(ack);
      } else if (m.has_job_update()) {
        c_->jobs().OnJobUpdate(hello.node(), m.job_update());
      }
    }
    c_->topology().Disconnected(hello.node(), channel);
    channel->Close();
    log->info("node {} disconnected", hello.node());
    return result;
  }

 private:
  Coordinator* c_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeAgentService(Coordinator* coordinator) {
  return std::make_unique<AgentServiceImpl>(coordinator);
}

}  // namespace dagvault::coordinator
