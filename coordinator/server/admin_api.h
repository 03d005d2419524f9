// The operator's API (proto/dagvault/v1/admin.proto) as the coordinator
// carries it out, for its two ways in: the gRPC service (admin_service.cc,
// the command line) and the web console. Both have checked the caller's
// role (access.h) before they call here.
//
// Every action (a method that needs the operator or admin role) is
// recorded in the audit log with the caller, the request, the result and
// what it created; jobs a person starts or cancels also name them in the
// job's events.
#pragma once

#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "common/tls.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

class Coordinator;

// Who made an admin call, and how it arrived.
struct AdminCaller {
  PeerIdentity peer;
  std::string via = "grpc";  // "grpc" or "console"

  // "alice (operator) through the admin API"; the words job events and
  // the audit log use.
  std::string Describe() const;
};

class AdminApi {
 public:
  explicit AdminApi(Coordinator* coordinator) : c_(coordinator) {}

  absl::Status GetStatus(const AdminCaller& caller, const dagvault::v1::ClusterStatusRequest& r,
                         dagvault::v1::ClusterStatus* out);
  absl::Status StartBackup(const AdminCaller& caller, const dagvault::v1::StartBackupRequest& r,
                           dagvault::v1::JobInfo* out);
  absl::Status StartRestore(const AdminCaller& caller, const dagvault::v1::StartRestoreRequest& r,
                            dagvault::v1::JobInfo* out);
  absl::Status StartReseed(const AdminCaller& caller, const dagvault::v1::StartReseedRequest& r,
                           dagvault::v1::JobInfo* out);
  absl::Status ListBackups(const AdminCaller& caller, const dagvault::v1::ListBackupsRequest& r,
                           dagvault::v1::ListBackupsResponse* out);
  absl::Status ShowChains(const AdminCaller& caller, const dagvault::v1::ShowChainsRequest& r,
                          dagvault::v1::ShowChainsResponse* out);
  absl::Status ListJobs(const AdminCaller& caller, const dagvault::v1::ListJobsRequest& r,
                        dagvault::v1::ListJobsResponse* out);
  absl::Status GetJob(const AdminCaller& caller, const dagvault::v1::JobRequest& r,
                      dagvault::v1::JobInfo* out);
  absl::Status CancelJob(const AdminCaller& caller, const dagvault::v1::JobRequest& r,
                         dagvault::v1::JobInfo* out);
  absl::Status RebuildCatalog(const AdminCaller& caller,
                              const dagvault::v1::RebuildCatalogRequest& r,
                              dagvault::v1::RebuildCatalogResponse* out);
  absl::Status Expire(const AdminCaller& caller, const dagvault::v1::ExpireRequest& r,
                      dagvault::v1::ExpireResponse* out);
  absl::Status SetPolicy(const AdminCaller& caller, const dagvault::v1::Policy& r,
                         dagvault::v1::PolicyInfo* out);
  absl::Status GetPolicy(const AdminCaller& caller, const dagvault::v1::PolicyRequest& r,
                         dagvault::v1::PolicyInfo* out);
  absl::Status ListPolicies(const AdminCaller& caller, const dagvault::v1::ListPoliciesRequest& r,
                            dagvault::v1::ListPoliciesResponse* out);
  absl::Status RemovePolicy(const AdminCaller& caller, const dagvault::v1::PolicyRequest& r,
                            dagvault::v1::PolicyInfo* out);
  absl::Status ListAudit(const AdminCaller& caller, const dagvault::v1::ListAuditRequest& r,
                         dagvault::v1::ListAuditResponse* out);
  absl::Status CreateConsoleToken(const AdminCaller& caller,
                                  const dagvault::v1::ConsoleTokenRequest& r,
                                  dagvault::v1::ConsoleToken* out);

  // Records a call the access check refused (with no request: it was
  // refused before one was read).
  void RecordRefusal(const PeerIdentity& caller, const std::string& via, const std::string& method,
                     const absl::Status& why);

 private:
  // Writes the audit entry of an action and returns `result`. A failed
  // write is logged with its event id; the action's outcome stands (it
  // has happened), and the log line carries what the entry would have.
  absl::Status Audit(const AdminCaller& caller, const char* method, const std::string& target,
                     const google::protobuf::Message& request, const absl::Status& result,
                     const std::string& what);
  absl::StatusOr<dagvault::v1::Policy> FindPolicy(const std::string& name);

  Coordinator* c_;
  std::mutex policies_mu_;  // a policy's validation and write, as one
};

}  // namespace dagvault::coordinator
