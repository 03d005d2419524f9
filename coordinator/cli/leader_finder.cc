#include "coordinator/cli/leader_finder.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dagvault/v1/admin.grpc.pb.h"

namespace dagvault::cli {
namespace {

namespace v1 = dagvault::v1;

// The words a standby's refusal ends with (coordinator/server/coordinator.cc,
// RedirectIfStandby).
constexpr char kLeaderIsAt[] = "the leader is at ";

struct Probe {
  std::string address;
  std::unique_ptr<v1::CoordinatorAdmin::Stub> stub;
  grpc::ClientContext context;
  v1::LeaderInfo info;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::LeaderInfo>> call;
};

// The address a probe's answer sends the command to, if it is decisive.
// A standby that knows no leader is added to `standbys`.
std::optional<std::string> Decision(const Probe& p, std::vector<std::string>* why,
                                    std::vector<std::string>* standbys) {
  const grpc::Status& s = p.status;
  if (!s.ok() && s.error_code() != grpc::StatusCode::UNAVAILABLE &&
      s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
      s.error_code() != grpc::StatusCode::CANCELLED) {
    return p.address;
  }
  if (!s.ok()) {
    why->push_back(absl::StrCat(p.address, ": ", s.error_message()));
    return std::nullopt;
  }
  if (p.info.this_one()) return p.address;
  if (!p.info.leader().empty()) return p.info.leader();
  standbys->push_back(p.address);
  why->push_back(
      absl::StrCat(p.address, ": stands by, and ",
                   p.info.no_leader_reason().empty()
                       ? std::string("no coordinator leads yet")
                       : absl::StrCat("cannot tell who leads: ", p.info.no_leader_reason())));
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::string> FindLeader(const std::vector<std::string>& addresses,
                                       const std::shared_ptr<grpc::ChannelCredentials>& creds,
                                       absl::Duration timeout, std::vector<std::string>* standbys) {
  grpc::CompletionQueue queue;
  std::vector<std::unique_ptr<Probe>> probes;
  const auto deadline = std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout);
  for (const std::string& address : addresses) {
    auto p = std::make_unique<Probe>();
    p->address = address;
    p->stub = v1::CoordinatorAdmin::NewStub(grpc::CreateChannel(address, creds));
    p->context.set_deadline(deadline);
    p->call = p->stub->AsyncWhoLeads(&p->context, v1::WhoLeadsRequest(), &queue);
    p->call->Finish(&p->info, &p->status, p.get());
    probes.push_back(std::move(p));
  }
  std::optional<std::string> leader;
  std::vector<std::string> why, answered_standby;
  size_t pending = probes.size();
  void* tag = nullptr;
  bool ok = false;
  // Every call is drained before the queue goes, the ones still waiting
  // cancelled once an answer has decided.
  while (pending > 0 && queue.Next(&tag, &ok)) {
    --pending;
    auto* probe = static_cast<Probe*>(tag);
    if (leader) continue;
    leader = Decision(*probe, &why, &answered_standby);
    if (leader) {
      for (auto& p : probes) p->context.TryCancel();
    }
  }
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  if (leader) return *leader;
  if (standbys != nullptr) *standbys = std::move(answered_standby);
  return absl::UnavailableError(
      absl::StrCat("no coordinator leads (", absl::StrJoin(why, "; "), ")"));
}

std::optional<std::string> LeaderNamedIn(const absl::Status& s) {
  if (s.code() != absl::StatusCode::kUnavailable) return std::nullopt;
  const size_t at = s.message().rfind(kLeaderIsAt);
  if (at == absl::string_view::npos) return std::nullopt;
  absl::string_view leader = s.message().substr(at + sizeof(kLeaderIsAt) - 1);
  const size_t end = leader.find_first_of(" ;,)\n");
  if (end != absl::string_view::npos) leader = leader.substr(0, end);
  if (leader.empty()) return std::nullopt;
  return std::string(leader);
}

}  // namespace dagvault::cli
