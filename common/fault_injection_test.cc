#include "common/fault_injection.h"

#include <sys/wait.h>
#include <unistd.h>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace dagvault {
namespace {

TEST(CrashPoint, RejectsBadCount) {
  EXPECT_FALSE(ConfigureCrashPoint("x@zero").ok());
  EXPECT_FALSE(ConfigureCrashPoint("x@0").ok());
}

TEST(CrashPoint, UnarmedPointsDoNothing) {
  ASSERT_TRUE(ConfigureCrashPoint("").ok());
  CrashPoint("anything");  // must return
  SUCCEED();
}

TEST(CrashPoint, FiresOnNthHitWithSigkill) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!ConfigureCrashPoint("step.b@2").ok()) _exit(3);
    CrashPoint("step.a");
    CrashPoint("step.b");  // first hit: survives
    CrashPoint("step.b");  // second hit: dies here
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(DelayPoint, RejectsASpecWithoutMilliseconds) {
  EXPECT_FALSE(ConfigureDelayPoint("step").ok());
  EXPECT_FALSE(ConfigureDelayPoint("step:soon").ok());
  EXPECT_FALSE(ConfigureDelayPoint("step:-5").ok());
}

TEST(DelayPoint, SlowsOnlyItsOwnPoint) {
  ASSERT_TRUE(ConfigureDelayPoint("step.slow:1000").ok());
  absl::Time start = absl::Now();
  CrashPoint("step.fast");
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1000));
  start = absl::Now();
  CrashPoint("step.slow");
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(1000));
  ASSERT_TRUE(ConfigureDelayPoint("").ok());
  start = absl::Now();
  CrashPoint("step.slow");  // disarmed
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1000));
}

TEST(DelayPoint, SeveralPointsEachWithTheirOwnDelay) {
  EXPECT_FALSE(ConfigureDelayPoint("a:10,b").ok());
  ASSERT_TRUE(ConfigureDelayPoint("step.a:300,step.b:600").ok());
  absl::Time start = absl::Now();
  CrashPoint("step.a");
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  start = absl::Now();
  CrashPoint("step.b");
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(600));
  start = absl::Now();
  CrashPoint("step.c");
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(300));
  ASSERT_TRUE(ConfigureDelayPoint("").ok());
}

TEST(FailPoint, FailsOnlyItsOwnPointNamingItUntilDisarmed) {
  EXPECT_TRUE(FailPoint("store.write").ok());
  ASSERT_TRUE(ConfigureFailPoint("store.write").ok());
  EXPECT_TRUE(FailPoint("store.read").ok());
  const absl::Status failed = FailPoint("store.write");
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal);
  EXPECT_NE(failed.message().find("injected failure at store.write"), absl::string_view::npos);
  EXPECT_FALSE(FailPoint("store.write").ok());  // every time
  ASSERT_TRUE(ConfigureFailPoint("").ok());
  EXPECT_TRUE(FailPoint("store.write").ok());
}

}  // namespace
}  // namespace dagvault
