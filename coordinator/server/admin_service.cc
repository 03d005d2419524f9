// CoordinatorAdmin over gRPC: the command line's way in to AdminApi. Every
// method first checks who may call it (Coordinator::Refuse, access.h),
// with the certificate the coordinator's TLS front verified.
#include <grpcpp/grpcpp.h>

#include "common/grpc_status.h"
#include "common/job_state.h"
#include "coordinator/server/admin_api.h"
#include "coordinator/server/coordinator.h"
#include "dagvault/v1/admin.grpc.pb.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using grpc::ServerContext;

// The path AuthorizeAdminCall reads the method's required role from.
#define DAGVAULT_ADMIN_PATH(Method) "/dagvault.v1.CoordinatorAdmin/" #Method

// One unary method: `redirect` decides whether this coordinator sends the
// caller to the leader; if not, the caller is taken from the call's
// certificate and AdminApi answers.
#define DAGVAULT_ADMIN_CALL(Method, Request, Response, redirect)                         \
  grpc::Status Method(ServerContext* ctx, const v1::Request* request, v1::Response* out) \
      override {                                                                         \
    PeerIdentity caller;                                                                 \
    if (auto refused = c_->Refuse(*ctx, DAGVAULT_ADMIN_PATH(Method), &caller)) {         \
      return *refused;                                                                   \
    }                                                                                    \
    if (auto standby = c_->redirect(ctx)) return *standby;                               \
    return ToGrpcStatus(api_->Method({caller, "grpc"}, *request, out));                  \
  }

// A method that acts or needs the leader's memory: a standby always points
// to the leader.
#define DAGVAULT_ADMIN_METHOD(Method, Request, Response) \
  DAGVAULT_ADMIN_CALL(Method, Request, Response, RedirectIfStandby)

// A method that only reads the catalog, answered by a standby too while no
// coordinator leads: a standby exists only beside a shared PostgreSQL
// catalog (coordinator.cc), so it reads what the leader wrote, and an
// operator can still list backups, chains, jobs, policies and the audit
// log while etcd has no quorum. Jobs are as last catalogued; while a
// leader is known the call goes there, for its running jobs' progress.
#define DAGVAULT_ADMIN_CATALOG_READ(Method, Request, Response) \
  DAGVAULT_ADMIN_CALL(Method, Request, Response, RedirectCatalogReadIfLeaderKnown)

class AdminServiceImpl final : public v1::CoordinatorAdmin::Service {
 public:
  explicit AdminServiceImpl(Coordinator* c) : c_(c), api_(&c->admin()) {}

  DAGVAULT_ADMIN_METHOD(GetStatus, ClusterStatusRequest, ClusterStatus)
  DAGVAULT_ADMIN_METHOD(StartBackup, StartBackupRequest, JobInfo)
  DAGVAULT_ADMIN_METHOD(StartRestore, StartRestoreRequest, JobInfo)
  DAGVAULT_ADMIN_METHOD(StartReseed, StartReseedRequest, JobInfo)
  DAGVAULT_ADMIN_CATALOG_READ(ListBackups, ListBackupsRequest, ListBackupsResponse)
  DAGVAULT_ADMIN_CATALOG_READ(ShowChains, ShowChainsRequest, ShowChainsResponse)
  DAGVAULT_ADMIN_CATALOG_READ(ListJobs, ListJobsRequest, ListJobsResponse)
  DAGVAULT_ADMIN_CATALOG_READ(GetJob, JobRequest, JobInfo)
  DAGVAULT_ADMIN_METHOD(CancelJob, JobRequest, JobInfo)
  DAGVAULT_ADMIN_METHOD(RebuildCatalog, RebuildCatalogRequest, RebuildCatalogResponse)
  DAGVAULT_ADMIN_METHOD(Expire, ExpireRequest, ExpireResponse)
  DAGVAULT_ADMIN_METHOD(SetPolicy, Policy, PolicyInfo)
  DAGVAULT_ADMIN_CATALOG_READ(GetPolicy, PolicyRequest, PolicyInfo)
  DAGVAULT_ADMIN_CATALOG_READ(ListPolicies, ListPoliciesRequest, ListPoliciesResponse)
  DAGVAULT_ADMIN_METHOD(RemovePolicy, PolicyRequest, PolicyInfo)
  DAGVAULT_ADMIN_CATALOG_READ(ListAudit, ListAuditRequest, ListAuditResponse)
  DAGVAULT_ADMIN_METHOD(CreateConsoleToken, ConsoleTokenRequest, ConsoleToken)

  // Answered by standbys too.
  grpc::Status WhoLeads(ServerContext* ctx, const v1::WhoLeadsRequest*,
                        v1::LeaderInfo* out) override {
    PeerIdentity caller;
    if (auto refused = c_->Refuse(*ctx, DAGVAULT_ADMIN_PATH(WhoLeads), &caller)) return *refused;
    *out = c_->WhoLeads();
    return grpc::Status::OK;
  }

  // The job now, then at every change until it ends.
  grpc::Status WatchJob(ServerContext* ctx, const v1::JobRequest* request,
                        grpc::ServerWriter<v1::JobInfo>* writer) override {
    PeerIdentity caller;
    if (auto refused = c_->Refuse(*ctx, DAGVAULT_ADMIN_PATH(WatchJob), &caller)) return *refused;
    if (auto standby = c_->RedirectIfStandby(ctx)) return *standby;
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
      if (IsFinalJobState(job->state())) {
        break;
      }
      seen = c_->jobs().WaitForChange(seen, absl::Seconds(1));
    }
    return grpc::Status::OK;
  }

 private:
  Coordinator* c_;
  AdminApi* api_;
};

#undef DAGVAULT_ADMIN_METHOD
#undef DAGVAULT_ADMIN_CATALOG_READ
#undef DAGVAULT_ADMIN_CALL
#undef DAGVAULT_ADMIN_PATH

}  // namespace

std::unique_ptr<grpc::Service> MakeAdminService(Coordinator* coordinator) {
  return std::make_unique<AdminServiceImpl>(coordinator);
}

}  // namespace dagvault::coordinator
