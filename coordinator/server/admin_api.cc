#include "coordinator/server/admin_api.h"

#include <google/protobuf/util/json_util.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "common/events.h"
#include "common/logging.h"
#include "coordinator/catalog/rebuild.h"
#include "coordinator/chains/chain_view.h"
#include "coordinator/schedule/policy.h"
#include "coordinator/server/coordinator.h"
#include "repository/cli_support.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

std::string JsonOf(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(m, &out, options).ok()) return "{}";
  return out;
}

std::string Via(const std::string& via) {
  return via == "console" ? "through the web console" : "through the admin API";
}

}  // namespace

std::string AdminCaller::Describe() const {
  if (!peer.authenticated)
    return absl::StrCat("an unauthenticated caller (insecure-dev) ", Via(via));
  return absl::StrCat(peer.common_name, " (", peer.role, ") ", Via(via));
}

absl::Status AdminApi::Audit(const AdminCaller& caller, const char* method,
                             const std::string& target, const google::protobuf::Message& request,
                             const absl::Status& result, const std::string& what) {
  v1::AuditEntry e;
  e.set_time_us(absl::ToUnixMicros(absl::Now()));
  e.set_identity(caller.peer.authenticated ? caller.peer.common_name : "");
  e.set_role(caller.peer.role);
  e.set_method(method);
  e.set_target(target);
  e.set_request(JsonOf(request));
  e.set_allowed(true);
  e.set_result(result.ok() ? "OK" : absl::StatusCodeToString(result.code()));
  e.set_message(result.ok() ? what : std::string(result.message()));
  e.set_via(caller.via);
  const events::Fields fields = {{"identity", e.identity()}, {"role", e.role()},
                                 {"method", method},         {"target", target},
                                 {"result", e.result()},     {"via", caller.via}};
  events::Emit("audit", spdlog::level::info, events::EventId::kAdminAction,
               absl::StrCat(method, " ", target, " by ", caller.Describe(), ": ", e.result(),
                            e.message().empty() ? "" : absl::StrCat(" (", e.message(), ")")),
               fields);
  if (absl::Status s = c_->catalog().AppendAudit(e); !s.ok()) {
    events::Emit("audit", spdlog::level::err, events::EventId::kAuditWriteFailed,
                 absl::StrCat("the audit log could not record ", method, " by ", caller.Describe(),
                              ": ", s.ToString()),
                 fields);
  }
  return result;
}

void AdminApi::RecordRefusal(const PeerIdentity& caller, const std::string& via,
                             const std::string& given_method, const absl::Status& why) {
  // The method comes from the caller's request path: bounded.
  const std::string method = given_method.substr(0, 128);
  v1::AuditEntry e;
  e.set_time_us(absl::ToUnixMicros(absl::Now()));
  e.set_identity(caller.authenticated ? caller.common_name : "");
  e.set_role(caller.role);
  e.set_method(method);
  e.set_allowed(false);
  e.set_result(absl::StatusCodeToString(why.code()));
  e.set_message(std::string(why.message()));
  e.set_via(via);
  const events::Fields fields = {
      {"identity", e.identity()}, {"role", e.role()}, {"method", method}, {"via", via}};
  events::Emit("audit", spdlog::level::warn, events::EventId::kAccessRefused,
               absl::StrCat("refused ", method, " from ", caller.Describe(), ": ", why.message()),
               fields);
  if (absl::Status s = c_->catalog().AppendAudit(e); !s.ok()) {
    events::Emit(
        "audit", spdlog::level::err, events::EventId::kAuditWriteFailed,
        absl::StrCat("the audit log could not record a refusal of ", method, ": ", s.ToString()),
        fields);
  }
}

absl::Status AdminApi::GetStatus(const AdminCaller&, const v1::ClusterStatusRequest& request,
                                 v1::ClusterStatus* out) {
  c_->topology().Describe(request, out);
  auto leases = c_->leases().List();
  if (!leases.ok()) return leases.status();
  for (const auto& l : *leases) {
    v1::LeaseInfo* li = out->add_leases();
    li->set_unit(l.unit);
    li->set_job(l.job);
    li->set_holder_node(l.holder_node);
    li->set_acquired_us(absl::ToUnixMicros(l.acquired));
    li->set_expires_us(absl::ToUnixMicros(l.expires));
  }
  for (auto& j : c_->jobs().Running()) *out->add_running() = std::move(j);
  for (const QueuedBackup& q : c_->scheduler().Queue()) {
    if (!request.unit().empty() && q.unit != request.unit()) continue;
    v1::QueuedBackupInfo* qi = out->add_queued();
    qi->set_policy(q.policy);
    qi->set_unit(q.unit);
    qi->set_type(q.type);
    qi->set_priority(q.priority);
    qi->set_due_us(absl::ToUnixMicros(q.due));
    qi->set_waiting_for(q.waiting_for);
  }
  auto units = c_->Protection(request.unit(), request.all_units());
  if (!units.ok()) return units.status();
  out->set_units_total(units->total);
  out->set_units_within_rpo(units->within_rpo);
  for (auto& u : units->units) *out->add_units() = std::move(u);
  return absl::OkStatus();
}

absl::Status AdminApi::StartBackup(const AdminCaller& caller, const v1::StartBackupRequest& request,
                                   v1::JobInfo* out) {
  auto job = c_->jobs().StartBackup(request, absl::StrCat("requested by ", caller.Describe()));
  if (job.ok()) *out = JobInfoOf(*job);
  return Audit(caller, "StartBackup", request.unit(), request, job.status(),
               job.ok() ? absl::StrCat("job ", job->id) : "");
}

absl::Status AdminApi::StartRestore(const AdminCaller& caller,
                                    const v1::StartRestoreRequest& request, v1::JobInfo* out) {
  auto job = c_->jobs().StartRestore(request, caller.Describe());
  if (job.ok()) *out = JobInfoOf(*job);
  return Audit(caller, "StartRestore", request.unit(), request, job.status(),
               job.ok() ? absl::StrCat("job ", job->id) : "");
}

absl::Status AdminApi::StartReseed(const AdminCaller& caller, const v1::StartReseedRequest& request,
                                   v1::JobInfo* out) {
  auto job = c_->jobs().StartReseed(request, caller.Describe());
  if (job.ok()) *out = JobInfoOf(*job);
  return Audit(caller, "StartReseed", request.unit(), request, job.status(),
               job.ok() ? absl::StrCat("job ", job->id) : "");
}

absl::Status AdminApi::SetPolicy(const AdminCaller& caller, const v1::Policy& policy,
                                 v1::PolicyInfo* out) {
  absl::Status result = [&]() -> absl::Status {
    std::lock_guard<std::mutex> l(policies_mu_);
    auto existing = c_->catalog().Policies();
    if (!existing.ok()) return existing.status();
    if (absl::Status s = ValidatePolicy(policy, *existing); !s.ok()) return s;
    if (absl::Status s = c_->catalog().PutPolicy(policy); !s.ok()) return s;
    *out = DescribePolicy(policy, absl::Now());
    return absl::OkStatus();
  }();
  return Audit(caller, "SetPolicy", policy.name(), policy, result, "");
}

absl::Status AdminApi::GetPolicy(const AdminCaller&, const v1::PolicyRequest& request,
                                 v1::PolicyInfo* out) {
  auto found = FindPolicy(request.name());
  if (!found.ok()) return found.status();
  *out = DescribePolicy(*found, absl::Now());
  return absl::OkStatus();
}

absl::Status AdminApi::ListPolicies(const AdminCaller&, const v1::ListPoliciesRequest&,
                                    v1::ListPoliciesResponse* out) {
  auto policies = c_->catalog().Policies();
  if (!policies.ok()) return policies.status();
  for (const auto& p : *policies) *out->add_policies() = DescribePolicy(p, absl::Now());
  return absl::OkStatus();
}

absl::Status AdminApi::RemovePolicy(const AdminCaller& caller, const v1::PolicyRequest& request,
                                    v1::PolicyInfo* out) {
  absl::Status result = [&]() -> absl::Status {
    std::lock_guard<std::mutex> l(policies_mu_);
    auto found = FindPolicy(request.name());
    if (!found.ok()) return found.status();
    if (absl::Status s = c_->catalog().RemovePolicy(request.name()); !s.ok()) return s;
    *out->mutable_policy() = *found;
    return absl::OkStatus();
  }();
  return Audit(caller, "RemovePolicy", request.name(), request, result, "");
}

absl::Status AdminApi::ListBackups(const AdminCaller&, const v1::ListBackupsRequest& request,
                                   v1::ListBackupsResponse* out) {
  auto backups = c_->catalog().Backups(request.unit());
  if (!backups.ok()) return backups.status();
  for (const auto& b : *backups) *out->add_backups() = CatalogBackupOf(b);
  return absl::OkStatus();
}

absl::Status AdminApi::ShowChains(const AdminCaller&, const v1::ShowChainsRequest& request,
                                  v1::ShowChainsResponse* out) {
  if (request.unit().empty()) return absl::InvalidArgumentError("chain show: --unit U is required");
  auto backups = c_->catalog().Backups(request.unit());
  if (!backups.ok()) return backups.status();
  auto breaks = c_->catalog().ChainBreaks(request.unit());
  if (!breaks.ok()) return breaks.status();
  *out = coordinator::ShowChains(request.unit(), *backups, *breaks);
  auto verifications = c_->catalog().Verifications(request.unit(), 200);
  if (!verifications.ok()) return verifications.status();
  AttachVerifications(*verifications, ArchivedSegmentsByChain(request.unit(), *backups, *breaks),
                      out);
  return absl::OkStatus();
}

absl::Status AdminApi::ListJobs(const AdminCaller&, const v1::ListJobsRequest& request,
                                v1::ListJobsResponse* out) {
  auto jobs = c_->catalog().ListJobs(request.unit(), request.limit() != 0 ? request.limit() : 50);
  if (!jobs.ok()) return jobs.status();
  for (const auto& j : *jobs) {
    auto live = c_->jobs().Info(j.id, false);
    *out->add_jobs() = live.ok() ? *live : JobInfoOf(j);
  }
  return absl::OkStatus();
}

absl::Status AdminApi::GetJob(const AdminCaller&, const v1::JobRequest& request, v1::JobInfo* out) {
  auto job = c_->jobs().Info(request.job(), true);
  if (!job.ok()) return job.status();
  *out = *job;
  return absl::OkStatus();
}

absl::Status AdminApi::CancelJob(const AdminCaller& caller, const v1::JobRequest& request,
                                 v1::JobInfo* out) {
  auto job = c_->jobs().Cancel(request.job(), caller.Describe());
  if (job.ok()) *out = JobInfoOf(*job);
  return Audit(caller, "CancelJob", request.job(), request, job.status(), "");
}

absl::Status AdminApi::Expire(const AdminCaller& caller, const v1::ExpireRequest& request,
                              v1::ExpireResponse* out) {
  auto r = c_->Expire(request.dry_run());
  if (r.ok()) *out = *r;
  return Audit(caller, "Expire", "", request, r.status(),
               r.ok() ? absl::StrCat(r->expired_size(), " chains",
                                     request.dry_run() ? " would expire" : " expired")
                      : "");
}

absl::Status AdminApi::RebuildCatalog(const AdminCaller& caller,
                                      const v1::RebuildCatalogRequest& request,
                                      v1::RebuildCatalogResponse* out) {
  const std::string root =
      request.repository().empty() ? c_->config().repository() : request.repository();
  absl::Status result = [&]() -> absl::Status {
    auto repo = repository::OpenRepositoryWithSecretFiles(root, c_->config().passphrase_file(),
                                                          c_->config().key_file());
    if (!repo.ok()) {
      return absl::Status(repo.status().code(),
                          absl::StrCat("repository ", root, ": ", repo.status().message()));
    }
    std::lock_guard<std::mutex> l(c_->expiry_mutex());
    auto n = RebuildBackupsFromRepository(*repo, c_->catalog());
    if (!n.ok()) return n.status();
    out->set_backups(static_cast<uint32_t>(*n));
    auto backups = c_->catalog().Backups("");
    if (backups.ok()) {
      std::set<std::string> units;
      for (const auto& b : *backups) units.insert(b.unit);
      for (const auto& u : units) out->add_units(u);
    }
    logging::Get("coordinator")->info("catalog rebuilt from {}: {} backups", root, *n);
    return absl::OkStatus();
  }();
  return Audit(caller, "RebuildCatalog", root, request, result,
               result.ok() ? absl::StrCat(out->backups(), " backups") : "");
}

absl::Status AdminApi::ListAudit(const AdminCaller&, const v1::ListAuditRequest& request,
                                 v1::ListAuditResponse* out) {
  auto entries =
      c_->catalog().AuditEntries(request.limit() != 0 ? request.limit() : 100, request.identity());
  if (!entries.ok()) return entries.status();
  for (auto& e : *entries) *out->add_entries() = std::move(e);
  return absl::OkStatus();
}

absl::Status AdminApi::CreateConsoleToken(const AdminCaller& caller,
                                          const v1::ConsoleTokenRequest& request,
                                          v1::ConsoleToken* out) {
  absl::Status result = [&]() -> absl::Status {
    if (caller.via == "console") {
      // A token is proof of a certificate; a token must not beget tokens.
      return absl::PermissionDeniedError("a console token is issued on the command line only");
    }
    if (c_->console_port() == 0) {
      return absl::FailedPreconditionError(
          "the web console is not configured: set console { listen: \"HOST:PORT\" } in the "
          "coordinator's configuration (docs/console.md)");
    }
    auto issued = c_->console_tokens().Issue(caller.peer, absl::Seconds(request.ttl_seconds()));
    if (!issued.ok()) return issued.status();
    out->set_token(issued->token);
    out->set_expires_us(absl::ToUnixMicros(issued->expires));
    out->set_console_port(static_cast<uint32_t>(c_->console_port()));
    out->set_identity(caller.peer.common_name);
    out->set_role(caller.peer.role);
    return absl::OkStatus();
  }();
  // The audit entry records the login, never the token.
  return Audit(
      caller, "CreateConsoleToken", caller.peer.common_name, request, result,
      result.ok() ? absl::StrCat("valid until ", FormatUtc(absl::FromUnixMicros(out->expires_us())))
                  : "");
}

absl::StatusOr<v1::Policy> AdminApi::FindPolicy(const std::string& name) {
  auto policies = c_->catalog().Policies();
  if (!policies.ok()) return policies.status();
  std::vector<std::string> names;
  for (const auto& p : *policies) {
    if (p.name() == name) return p;
    names.push_back(p.name());
  }
  return absl::NotFoundError(
      absl::StrCat("no policy named \"", name,
                   "\" (there are: ", names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
}

}  // namespace dagvault::coordinator
