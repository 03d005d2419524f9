#include "mailstore/server/fencing_tokens.h"

#include <thread>
#include <vector>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::mailstore {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::unique_ptr<FencingTokens> OpenOrDie(const std::string& path) {
  auto tokens = FencingTokens::Open(path, "node1");
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  return tokens.ok() ? std::move(*tokens) : nullptr;
}

TEST(FencingTokens, AdmitsEqualOrHigherAndRefusesLowerNamingTheUnitAndBothTokens) {
  testing::TempDir dir("fencing");
  auto tokens = OpenOrDie(dir.Sub(kFencingTokensFile));
  ASSERT_NE(tokens, nullptr);
  EXPECT_TRUE(tokens->Admit("SG01", 7, "PrepareBackup").ok());
  EXPECT_EQ(tokens->Highest("SG01"), 7u);
  EXPECT_TRUE(tokens->Admit("SG01", 7, "PrepareBackup").ok());  // a retry of the same assignment
  absl::Status lower = tokens->Admit("SG01", 5, "PrepareBackup");
  EXPECT_EQ(lower.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      std::string(lower.message()),
      AllOf(HasSubstr("unit SG01"), HasSubstr("PrepareBackup"), HasSubstr("fencing token 5"),
            HasSubstr("node node1"), HasSubstr("(7)"), HasSubstr("superseded by a newer one")));
  EXPECT_EQ(tokens->Highest("SG01"), 7u);
  // Per unit: another unit's tokens start from nothing.
  EXPECT_TRUE(tokens->Admit("DB02", 3, "PrepareRestore").ok());
  EXPECT_TRUE(tokens->Admit("SG01", 8, "PrepareRestore").ok());
  EXPECT_EQ(tokens->Highest("SG01"), 8u);
  EXPECT_EQ(tokens->Highest("DB02"), 3u);
}

TEST(FencingTokens, TokenZeroIsAdmittedAndNotRecorded) {
  testing::TempDir dir("fencing");
  const std::string path = dir.Sub(kFencingTokensFile);
  auto tokens = OpenOrDie(path);
  ASSERT_NE(tokens, nullptr);
  EXPECT_TRUE(tokens->Admit("SG01", 0, "PrepareBackup").ok());
  EXPECT_FALSE(PathExists(path));
  ASSERT_TRUE(tokens->Admit("SG01", 4, "PrepareBackup").ok());
  // An operator's local command, with no coordinator, is not fenced.
  EXPECT_TRUE(tokens->Admit("SG01", 0, "PrepareBackup").ok());
  EXPECT_EQ(tokens->Highest("SG01"), 4u);
}

TEST(FencingTokens, TheHighestTokensSurviveAReload) {
  testing::TempDir dir("fencing");
  const std::string path = dir.Sub(kFencingTokensFile);
  {
    auto tokens = OpenOrDie(path);
    ASSERT_NE(tokens, nullptr);
    ASSERT_TRUE(tokens->Admit("SG01", 9, "PrepareBackup").ok());
    ASSERT_TRUE(tokens->Admit("DB02", 2, "PrepareBackup").ok());
  }
  auto reloaded = OpenOrDie(path);
  ASSERT_NE(reloaded, nullptr);
  EXPECT_EQ(reloaded->Highest("SG01"), 9u);
  EXPECT_EQ(reloaded->Highest("DB02"), 2u);
  EXPECT_EQ(reloaded->Admit("SG01", 8, "PrepareBackup").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(reloaded->Admit("DB02", 2, "PrepareBackup").ok());
}

TEST(FencingTokens, ADamagedFileIsAnErrorNamingIt) {
  testing::TempDir dir("fencing");
  const std::string path = dir.Sub(kFencingTokensFile);
  for (const char* content : {"highest { key: \"SG01\" value: 9", "", "not a table\n"}) {
    SCOPED_TRACE(content);
    ASSERT_TRUE(WriteFileAtomically(path, content).ok());
    auto tokens = FencingTokens::Open(path, "node1");
    ASSERT_FALSE(tokens.ok());
    EXPECT_EQ(tokens.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(tokens.status().message()),
                AllOf(HasSubstr("fencing token file " + path + " is damaged"),
                      HasSubstr("remove it to forget every token")));
  }
}

TEST(FencingTokens, ConcurrentAdmissionsKeepTheHighest) {
  testing::TempDir dir("fencing");
  const std::string path = dir.Sub(kFencingTokensFile);
  auto tokens = OpenOrDie(path);
  ASSERT_NE(tokens, nullptr);
  std::vector<std::thread> threads;
  for (uint64_t t = 1; t <= 8; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t k = 0; k < 5; ++k) (void)tokens->Admit("SG01", t * 10 + k, "PrepareBackup");
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(tokens->Highest("SG01"), 84u);
  auto reloaded = OpenOrDie(path);
  ASSERT_NE(reloaded, nullptr);
  EXPECT_EQ(reloaded->Highest("SG01"), 84u);
}

}  // namespace
}  // namespace dagvault::mailstore
