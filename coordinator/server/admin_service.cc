// CoordinatorAdmin: the operator's API (proto/dagvault/v1/admin.proto).
// Only certificates with the admin role may call it.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/tls.h"
#include "coordinator/catalog/rebuild.h"
#include "coordinator/chains/chain_view.h"
#include "coordinator/schedule/policy.h"
#include "coordinator/server/coordinator.h"
#include "dagvault/v1/admin.grpc.pb.h"
#include "repository/cli_support.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using grpc::ServerContext;

class AdminServiceImpl final : public v1::CoordinatorAdmin::Service {
 public:
  explicit AdminServiceImpl(Coordinator* c) : c_(c) {}

  grpc::Status GetStatus(ServerContext* ctx, const v1::ClusterStatusRequest* request,
                         v1::ClusterStatus* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    c_->topology().Describe(*request, out);
    auto leases = c_->catalog().Leases();
    if (!leases.ok()) return ToGrpcStatus(leases.status());
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
      if (!request->unit().empty() && q.unit != request->unit()) continue;
      v1::QueuedBackupInfo* qi = out->add_queued();
      qi->set_policy(q.policy);
      qi->set_unit(q.unit);
      qi->set_type(q.type);
      qi->set_priority(q.priority);
      qi->set_due_us(absl::ToUnixMicros(q.due));
      qi->set_waiting_for(q.waiting_for);
    }
    auto units = c_->Protection(request->unit());
    if (!units.ok()) return ToGrpcStatus(units.status());
    for (auto& u : *units) *out->add_units() = std::move(u);
    return grpc::Status::OK;
  }

  grpc::Status StartBackup(ServerContext* ctx, const v1::StartBackupRequest* request,
                           v1::JobInfo* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    auto job = c_->jobs().StartBackup(*request);
    if (!job.ok()) return ToGrpcStatus(job.status());
    *out = JobInfoOf(*job);
    return grpc::Status::OK;
  }

  grpc::Status StartRestore(ServerContext* ctx, const v1::StartRestoreRequest* request,
                            v1::JobInfo* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    auto job = c_->jobs().StartRestore(*request);
    if (!job.ok()) return ToGrpcStatus(job.status());
    *out = JobInfoOf(*job);
    return grpc::Status::OK;
  }

  grpc::Status SetPolicy(ServerContext* ctx, const v1::Policy* policy,
                         v1::PolicyInfo* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    std::lock_guard<std::mutex> l(policies_mu_);  // validation and the write, as one
    auto existing = c_->catalog().Policies();
    if (!existing.ok()) return ToGrpcStatus(existing.status());
    if (absl::Status s = ValidatePolicy(*policy, *existing); !s.ok()) return ToGrpcStatus(s);
    if (absl::Status s = c_->catalog().PutPolicy(*policy); !s.ok()) return ToGrpcStatus(s);
    *out = DescribePolicy(*policy, absl::Now());
    return grpc::Status::OK;
  }

  grpc::Status GetPolicy(ServerContext* ctx, const v1::PolicyRequest* request,
                         v1::PolicyInfo* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    auto found = FindPolicy(request->name());
    if (!found.ok()) return ToGrpcStatus(found.status());
    *out = DescribePolicy(*found, absl::Now());
    return grpc::Status::OK;
  }

  grpc::Status ListPolicies(ServerContext* ctx, const v1::ListPoliciesRequest*,
                            v1::ListPoliciesResponse* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    auto policies = c_->catalog().Policies();
    if (!policies.ok()) return ToGrpcStatus(policies.status());
    for (const auto& p : *policies) *out->add_policies() = DescribePolicy(p, absl::Now());
    return grpc::Status::OK;
  }

  grpc::Status RemovePolicy(ServerContext* ctx, const v1::PolicyRequest* request,
                            v1::PolicyInfo* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    std::lock_guard<std::mutex> l(policies_mu_);
    auto found = FindPolicy(request->name());
    if (!found.ok()) return ToGrpcStatus(found.status());
    if (absl::Status s = c_->catalog().RemovePolicy(request->name()); !s.ok()) {
      return ToGrpcStatus(s);
    }
    *out->mutable_policy() = *found;
    return grpc::Status::OK;
  }

  grpc::Status ListBackups(ServerContext* ctx, const v1::ListBackupsRequest* request,
                           v1::ListBackupsResponse* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    auto backups = c_->catalog().Backups(request->unit());
    if (!backups.ok()) return ToGrpcStatus(backups.status());
    for (const auto& b : *backups) *out->add_backups() = CatalogBackupOf(b);
    return grpc::Status::OK;
  }

  grpc::Status ShowChains(ServerContext* ctx, const v1::ShowChainsRequest* request,
                          v1::ShowChainsResponse* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    if (request->unit().empty()) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "chain show: --unit U is required"};
    }
    auto backups = c_->catalog().Backups(request->unit());
    if (!backups.ok()) return ToGrpcStatus(backups.status());
    auto breaks = c_->catalog().ChainBreaks(request->unit());
    if (!breaks.ok()) return ToGrpcStatus(breaks.status());
    *out = coordinator::ShowChains(request->unit(), *backups, *breaks);
    return grpc::Status::OK;
  }

  grpc::Status ListJobs(ServerContext* ctx, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    auto jobs =
        c_->catalog().ListJobs(request->unit(), request->limit() != 0 ? request->limit() : 50);
    if (!jobs.ok()) return ToGrpcStatus(jobs.status());
    for (const auto& j : *jobs) {
      auto live = c_->jobs().Info(j.id, false);
      *out->add_jobs() = live.ok() ? *live : JobInfoOf(j);
    }
    return grpc::Status::OK;
  }

  grpc::Status GetJob(ServerContext* ctx, const v1::JobRequest* request,
                      v1::JobInfo* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    auto job = c_->jobs().Info(request->job(), true);
    if (!job.ok()) return ToGrpcStatus(job.status());
    *out = *job;
    return grpc::Status::OK;
  }

  grpc::Status WatchJob(ServerContext* ctx, const v1::JobRequest* request,
                        grpc::ServerWriter<v1::JobInfo>* writer) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    uint64_t seen = c_->jobs().ChangeCounter();
    std::string last;
    while (!ctx->IsCancelled()) {
      auto job = c_->jobs().Info(request->job(), false);
      if (!job.ok()) return ToGrpcStatus(job.status());
      std::string now = job->SerializeAsString();
      if (now != last) {
        if (!writer->Write(*job)) break;
        last = std::move(now);
      }
      if (job->state() == "succeeded" || job->state() == "failed" || job->state() == "cancelled") {
        break;
      }
      seen = c_->jobs().WaitForChange(seen, absl::Seconds(1));
    }
    return grpc::Status::OK;
  }

  grpc::Status CancelJob(ServerContext* ctx, const v1::JobRequest* request,
                         v1::JobInfo* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    auto job = c_->jobs().Cancel(request->job());
    if (!job.ok()) return ToGrpcStatus(job.status());
    *out = JobInfoOf(*job);
    return grpc::Status::OK;
  }

  grpc::Status Expire(ServerContext* ctx, const v1::ExpireRequest* request,
                      v1::ExpireResponse* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    auto r = c_->Expire(request->dry_run());
    if (!r.ok()) return ToGrpcStatus(r.status());
    *out = *r;
    return grpc::Status::OK;
  }

  grpc::Status RebuildCatalog(ServerContext* ctx, const v1::RebuildCatalogRequest* request,
                              v1::RebuildCatalogResponse* out) override {
    if (auto denied = Authorize(*ctx); !denied.ok()) return denied;
    const std::string root =
        request->repository().empty() ? c_->config().repository() : request->repository();
    auto repo = repository::OpenRepositoryWithSecretFiles(root, c_->config().passphrase_file(),
                                                          c_->config().key_file());
    if (!repo.ok()) {
      return ToGrpcStatus(absl::Status(
          repo.status().code(), absl::StrCat("repository ", root, ": ", repo.status().message())));
    }
    std::lock_guard<std::mutex> l(c_->expiry_mutex());
    auto n = RebuildBackupsFromRepository(*repo, c_->catalog());
    if (!n.ok()) return ToGrpcStatus(n.status());
    out->set_backups(static_cast<uint32_t>(*n));
    auto backups = c_->catalog().Backups("");
    if (backups.ok()) {
      std::set<std::string> units;
      for (const auto& b : *backups) units.insert(b.unit);
      for (const auto& u : units) out->add_units(u);
    }
    logging::Get("coordinator")->info("catalog rebuilt from {}: {} backups", root, *n);
    return grpc::Status::OK;
  }

 private:
  grpc::Status Authorize(const ServerContext& ctx) const {
    if (c_->config().insecure_dev()) return grpc::Status::OK;
    const PeerIdentity peer = PeerOf(ctx);
    if (peer.authenticated && peer.role == kRoleAdmin) return grpc::Status::OK;
    return {grpc::StatusCode::PERMISSION_DENIED,
            absl::StrCat("the admin API needs an admin certificate (`dagvault certs issue --role "
                         "admin`); this caller is ",
                         peer.Describe())};
  }

  absl::StatusOr<v1::Policy> FindPolicy(const std::string& name) {
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

  Coordinator* c_;
  std::mutex policies_mu_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeAdminService(Coordinator* coordinator) {
  return std::make_unique<AdminServiceImpl>(coordinator);
}

}  // namespace dagvault::coordinator
