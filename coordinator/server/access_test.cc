#include "coordinator/server/access.h"

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::HasSubstr;

PeerIdentity Person(const std::string& name, const std::string& role) {
  return PeerIdentity{.authenticated = true, .common_name = name, .role = role};
}

TEST(Access, EveryAdminMethodDeclaresTheRoleItNeeds) {
  const auto* service =
      v1::ClusterStatus::descriptor()->file()->FindServiceByName("CoordinatorAdmin");
  ASSERT_NE(service, nullptr);
  for (int i = 0; i < service->method_count(); ++i) {
    auto role = RequiredRole(service->method(i)->name());
    ASSERT_TRUE(role.ok()) << role.status();
    EXPECT_NE(*role, v1::ACCESS_ROLE_UNSPECIFIED) << service->method(i)->name();
  }
}

TEST(Access, ReadsNeedViewerJobsOperatorAndChangesToTheDeploymentAdmin) {
  EXPECT_EQ(*RequiredRole("/dagvault.v1.CoordinatorAdmin/GetStatus"), v1::ROLE_VIEWER);
  EXPECT_EQ(*RequiredRole("ListAudit"), v1::ROLE_VIEWER);
  EXPECT_EQ(*RequiredRole("StartBackup"), v1::ROLE_OPERATOR);
  EXPECT_EQ(*RequiredRole("StartRestore"), v1::ROLE_OPERATOR);
  EXPECT_EQ(*RequiredRole("CancelJob"), v1::ROLE_OPERATOR);
  EXPECT_EQ(*RequiredRole("SetPolicy"), v1::ROLE_ADMIN);
  EXPECT_EQ(*RequiredRole("Expire"), v1::ROLE_ADMIN);
  EXPECT_EQ(*RequiredRole("RebuildCatalog"), v1::ROLE_ADMIN);
  EXPECT_EQ(RequiredRole("DropEverything").status().code(), absl::StatusCode::kNotFound);
}

TEST(Access, EachRoleMayDoWhatTheRolesBelowItMay) {
  const PeerIdentity viewer = Person("vera", "viewer");
  const PeerIdentity op = Person("otto", "operator");
  const PeerIdentity admin = Person("ada", "admin");
  EXPECT_TRUE(AuthorizeAdminCall("GetStatus", viewer).ok());
  EXPECT_TRUE(AuthorizeAdminCall("GetStatus", op).ok());
  EXPECT_TRUE(AuthorizeAdminCall("GetStatus", admin).ok());
  EXPECT_TRUE(AuthorizeAdminCall("StartBackup", op).ok());
  EXPECT_TRUE(AuthorizeAdminCall("StartBackup", admin).ok());
  EXPECT_TRUE(AuthorizeAdminCall("SetPolicy", admin).ok());

  absl::Status s = AuthorizeAdminCall("/dagvault.v1.CoordinatorAdmin/StartBackup", viewer);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(),
              HasSubstr("StartBackup needs role operator or above; vera (viewer) has role viewer"));
  s = AuthorizeAdminCall("SetPolicy", op);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("SetPolicy needs role admin or above"));
}

TEST(Access, MachinesAndStrangersAreNotPeople) {
  absl::Status node = AuthorizeAdminCall("GetStatus", Person("node1", "node"));
  EXPECT_EQ(node.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(node.message(), HasSubstr("needs a person's certificate"));
  EXPECT_THAT(node.message(), HasSubstr("node1 (node)"));
  EXPECT_FALSE(AuthorizeAdminCall("GetStatus", Person("coordinator", "coordinator")).ok());
  EXPECT_FALSE(AuthorizeAdminCall("GetStatus", Person("eve", "")).ok());
  absl::Status none = AuthorizeAdminCall("GetStatus", PeerIdentity{});
  EXPECT_THAT(none.message(), HasSubstr("this caller has none"));
  // A method the API does not have is refused, not let through.
  EXPECT_EQ(AuthorizeAdminCall("DropEverything", Person("ada", "admin")).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(Access, MethodOfPath) {
  EXPECT_EQ(MethodOfPath("/dagvault.v1.CoordinatorAdmin/GetJob"), "GetJob");
  EXPECT_EQ(MethodOfPath("GetJob"), "GetJob");
  // Only exactly /service/method names a method: a longer path is not
  // read as its last part.
  EXPECT_EQ(MethodOfPath("/dagvault.v1.CoordinatorAdmin/StartBackup/GetStatus"), "");
  EXPECT_FALSE(AuthorizeAdminCall("/dagvault.v1.CoordinatorAdmin/StartBackup/GetStatus",
                                  Person("vera", "viewer"))
                   .ok());
}

TEST(Access, EachServiceOfThePortAdmitsItsOwnCallers) {
  const PeerIdentity node = Person("node2", kRoleNode);
  const PeerIdentity viewer = Person("vera", kRoleViewer);
  const PeerIdentity stranger;  // no certificate
  // The agent service: nodes only.
  EXPECT_TRUE(AuthorizeCoordinatorCall("/dagvault.v1.AgentService/Connect", node).ok());
  absl::Status s = AuthorizeCoordinatorCall("/dagvault.v1.AgentService/Connect", viewer);
  EXPECT_TRUE(absl::IsPermissionDenied(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("vera (viewer)"));
  EXPECT_TRUE(absl::IsPermissionDenied(
      AuthorizeCoordinatorCall("/dagvault.v1.AgentService/Connect", stranger)));
  // The admin service: people by role; a node is not a person.
  EXPECT_TRUE(AuthorizeCoordinatorCall("/dagvault.v1.CoordinatorAdmin/GetStatus", viewer).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(
      AuthorizeCoordinatorCall("/dagvault.v1.CoordinatorAdmin/StartBackup", viewer)));
  EXPECT_TRUE(absl::IsPermissionDenied(
      AuthorizeCoordinatorCall("/dagvault.v1.CoordinatorAdmin/GetStatus", node)));
  // Health: any certificate of the deployment.
  EXPECT_TRUE(AuthorizeCoordinatorCall("/grpc.health.v1.Health/Check", node).ok());
  EXPECT_TRUE(AuthorizeCoordinatorCall("/grpc.health.v1.Health/Check", viewer).ok());
  EXPECT_TRUE(
      absl::IsPermissionDenied(AuthorizeCoordinatorCall("/grpc.health.v1.Health/Check", stranger)));
  // Anything else: refused, named.
  s = AuthorizeCoordinatorCall("/other.Service/Method", node);
  EXPECT_TRUE(absl::IsPermissionDenied(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("/other.Service/Method"));
}

}  // namespace
}  // namespace dagvault::coordinator
