#include "common/job_state.h"

#include <gtest/gtest.h>

namespace dagvault {
namespace {

namespace v1 = dagvault::v1;

TEST(JobStateWords, EveryEnumValueHasItsWordAndOnlyTheEndsAreFinal) {
  const google::protobuf::EnumDescriptor* states = v1::JobState_descriptor();
  for (int i = 0; i < states->value_count(); ++i) {
    const auto s = static_cast<v1::JobState>(states->value(i)->number());
    if (s == v1::JOB_STATE_UNSPECIFIED) continue;
    EXPECT_NE(JobStateName(s), "unknown") << states->value(i)->name();
  }
  EXPECT_EQ(JobStateName(v1::JOB_TRANSFERRING), "transferring");
  EXPECT_TRUE(IsFinalJobState(v1::JOB_SUCCEEDED));
  EXPECT_TRUE(IsFinalJobState(v1::JOB_FAILED));
  EXPECT_TRUE(IsFinalJobState(v1::JOB_CANCELLED));
  EXPECT_FALSE(IsFinalJobState(v1::JOB_COMPLETING));
  EXPECT_FALSE(IsFinalJobState(v1::JOB_STATE_UNSPECIFIED));

  for (int i = 1; i < v1::JobKind_descriptor()->value_count(); ++i) {
    EXPECT_NE(JobKindName(static_cast<v1::JobKind>(i)), "unknown");
  }
  for (int i = 1; i < v1::RestoreStepState_descriptor()->value_count(); ++i) {
    EXPECT_NE(RestoreStepStateName(static_cast<v1::RestoreStepState>(i)), "unknown");
  }
  for (int i = 1; i < v1::CopyOperationKind_descriptor()->value_count(); ++i) {
    EXPECT_NE(CopyOperationName(static_cast<v1::CopyOperationKind>(i)), "unknown");
  }
  EXPECT_EQ(CopyOperationName(v1::COPY_RESEED), "reseed");  // fault point agent.copy_op.reseed
}

}  // namespace
}  // namespace dagvault
