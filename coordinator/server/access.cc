#include "coordinator/server/access.h"

#include <google/protobuf/descriptor.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "dagvault/v1/admin.grpc.pb.h"
#include "dagvault/v1/agent.grpc.pb.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

constexpr absl::string_view kHealthService = "grpc.health.v1.Health";

// "/pkg.Service/Method" → "pkg.Service".
absl::string_view ServiceOfPath(absl::string_view path) {
  absl::ConsumePrefix(&path, "/");
  const size_t slash = path.find('/');
  return slash == absl::string_view::npos ? absl::string_view() : path.substr(0, slash);
}

const std::string& AdminServiceName() {
  static const std::string* name = new std::string(v1::CoordinatorAdmin::service_full_name());
  return *name;
}

}  // namespace

v1::AccessRole AccessRoleOf(absl::string_view certificate_role) {
  if (certificate_role == kRoleViewer) return v1::ROLE_VIEWER;
  if (certificate_role == kRoleOperator) return v1::ROLE_OPERATOR;
  if (certificate_role == kRoleAdmin) return v1::ROLE_ADMIN;
  return v1::ACCESS_ROLE_UNSPECIFIED;
}

std::string AccessRoleName(v1::AccessRole role) {
  switch (role) {
    case v1::ROLE_VIEWER:
      return kRoleViewer;
    case v1::ROLE_OPERATOR:
      return kRoleOperator;
    case v1::ROLE_ADMIN:
      return kRoleAdmin;
    default:
      return "none";
  }
}

absl::string_view MethodOfPath(absl::string_view path) {
  // Exactly "/<service>/<method>" (or a bare method name); anything else
  // names no method, and no method is allowed.
  if (!absl::ConsumePrefix(&path, "/")) return path;
  const size_t slash = path.find('/');
  if (slash == absl::string_view::npos) return absl::string_view();
  const absl::string_view method = path.substr(slash + 1);
  return method.find('/') == absl::string_view::npos ? method : absl::string_view();
}

absl::StatusOr<v1::AccessRole> RequiredRole(absl::string_view method) {
  const std::string name(MethodOfPath(method));
  // Referencing the file's descriptor makes sure it is in the pool.
  const google::protobuf::ServiceDescriptor* service =
      v1::ClusterStatus::descriptor()->file()->FindServiceByName("CoordinatorAdmin");
  const google::protobuf::MethodDescriptor* m =
      service == nullptr ? nullptr : service->FindMethodByName(name);
  if (m == nullptr) {
    return absl::NotFoundError(absl::StrCat("the admin API has no method ", name));
  }
  const v1::AccessRole role = m->options().GetExtension(v1::required_role);
  if (role == v1::ACCESS_ROLE_UNSPECIFIED) {
    // Fail closed: a method someone added without deciding who may call it.
    return absl::InternalError(
        absl::StrCat("admin method ", name, " declares no required_role in admin.proto"));
  }
  return role;
}

absl::Status AuthorizeAdminCall(absl::string_view method, const PeerIdentity& caller) {
  auto needed = RequiredRole(method);
  if (!needed.ok()) return absl::PermissionDeniedError(needed.status().message());
  const std::string name(MethodOfPath(method));
  if (!caller.authenticated) {
    return absl::PermissionDeniedError(
        absl::StrCat(name, " needs a person's certificate of this deployment (role ",
                     AccessRoleName(*needed), " or above); this caller has none"));
  }
  const v1::AccessRole has = AccessRoleOf(caller.role);
  if (has == v1::ACCESS_ROLE_UNSPECIFIED) {
    return absl::PermissionDeniedError(
        absl::StrCat(name, " needs a person's certificate (role ", AccessRoleName(*needed),
                     " or above, `dagvault certs issue --role ", AccessRoleName(*needed),
                     "`); this caller is ", caller.Describe()));
  }
  if (has < *needed) {
    return absl::PermissionDeniedError(absl::StrCat(name, " needs role ", AccessRoleName(*needed),
                                                    " or above; ", caller.Describe(), " has role ",
                                                    AccessRoleName(has)));
  }
  return absl::OkStatus();
}

absl::Status AuthorizeCoordinatorCall(absl::string_view path, const PeerIdentity& caller) {
  const absl::string_view service = ServiceOfPath(path);
  if (service == AdminServiceName()) return AuthorizeAdminCall(path, caller);
  if (!caller.authenticated) {
    return absl::PermissionDeniedError(
        absl::StrCat("refused: ", caller.Describe(), " (no certificate of this deployment)"));
  }
  if (service == v1::AgentService::service_full_name()) {
    if (caller.role == kRoleNode) return absl::OkStatus();
    return absl::PermissionDeniedError(absl::StrCat(
        "the agent service is for nodes' certificates; this caller is ", caller.Describe()));
  }
  if (service == kHealthService) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("no such service here: ", path));
}

}  // namespace dagvault::coordinator
