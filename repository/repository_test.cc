// The files a repository keeps: who may read them.
#include "repository/repository.h"

#include <sys/stat.h>

#include "gtest/gtest.h"
#include "repository/repository_test_util.h"

namespace dagvault::repository {
namespace {

using namespace testing;  // NOLINT: the shared test helpers

mode_t PermissionsOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(RepositoryFiles, KeySlotsAreReadableByTheirOwnerOnlyWhateverTheUmask) {
  ::dagvault::testing::TempDir dir("repofiles");
  const mode_t old = ::umask(0022);
  auto repo = Repository::Init(dir.Sub("repo"), TestPassphrase(), FastInit());
  ASSERT_TRUE(repo.ok()) << repo.status();
  auto added = repo->AddKey(TestPassphrase("another passphrase"), FastInit().scrypt);
  ::umask(old);
  ASSERT_TRUE(added.ok()) << added.status();
  auto names = ListDirectory(dir.Sub("repo/keys"));
  ASSERT_TRUE(names.ok());
  ASSERT_EQ(names->size(), 2u);
  for (const auto& name : *names) {
    EXPECT_EQ(PermissionsOf(dir.Sub("repo/keys/" + name)), 0600u) << name;
  }
  // What is not secret stays readable.
  EXPECT_EQ(PermissionsOf(dir.Sub("repo/config")), 0644u);
  EXPECT_EQ(PermissionsOf(dir.Sub("repo/keys")), 0755u);
}

}  // namespace
}  // namespace dagvault::repository
