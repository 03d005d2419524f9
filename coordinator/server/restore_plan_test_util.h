// The fixture of the restore plan's tests (restore_plan_test.cc and
// reseed_plan_test.cc): a job manager on a real SQLite catalog, three
// nodes on fake agent channels, each reporting its copy of DB02 (node1
// the active one), and a verified Full of DB02 with logs 1 to 3.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/job_state.h"
#include "common/testing/temp_dir.h"
#include "coordinator/catalog/sqlite_catalog.h"
#include "coordinator/server/fake_agent_channel.h"
#include "coordinator/server/job_manager.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;
using FakeChannel = FakeAgentChannel;

class RestorePlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = SqliteCatalog::Open(dir_.Sub("catalog.db"));
    ASSERT_TRUE(c.ok()) << c.status();
    catalog_ = std::move(*c);
    topology_ = std::make_unique<Topology>(catalog_.get(), absl::Seconds(30), &clock_);
    jobs_ = MakeJobs();
    for (const char* node : {"node1", "node2", "node3"}) {
      auto channel = std::make_shared<FakeChannel>();
      channels_[node] = channel;
      v1::Register hello;
      hello.set_node(node);
      topology_->Connected(hello, channel);
    }
    CopiesReported();
    // A verified Full of DB02 with logs 1..3.
    v1::Manifest m;
    m.set_id("20261122T100000.000000Z-00000001");
    m.set_unit("DB02");
    m.set_type(v1::FULL);
    m.set_low_generation(1);
    m.set_high_generation(3);
    m.set_log_signature("LS");
    m.add_database_signatures("DS");
    (*m.mutable_labels())["verified"] = "pages and logs";
    for (uint32_t g = 1; g <= 3; ++g) {
      auto* f = m.add_files();
      f->set_role("log");
      f->set_generation(g);
      f->set_sha256(absl::StrCat("h", g));
      if (g > 1) f->set_link_hash(absl::StrCat("h", g - 1));
    }
    m.add_files()->set_role("database");
    ASSERT_TRUE(catalog_->PutBackup(BackupRecordOf(m)).ok());
  }

  // Every node reports its copy of DB02 (node1 the active one) to the
  // topology, as it does every few seconds.
  void CopiesReported() {
    for (const char* node : {"node1", "node2", "node3"}) {
      v1::NodeReport r;
      r.set_node(node);
      v1::CopyStatus* copy = r.add_copies();
      copy->set_unit("DB02");
      copy->set_node(node);
      copy->set_role(std::string(node) == "node1" ? v1::ACTIVE : v1::PASSIVE);
      copy->set_state(std::string(node) == "node1" ? v1::MOUNTED : v1::HEALTHY);
      topology_->Report(r);
    }
  }

  std::unique_ptr<JobManager> MakeJobs() {
    JobManagerOptions o;
    o.lease_ttl = absl::Milliseconds(300);
    o.report_grace = absl::Seconds(10);
    o.clock = &clock_;
    return std::make_unique<JobManager>(catalog_.get(), topology_.get(), o);
  }

  std::string StartRestore() {
    v1::StartRestoreRequest r;
    r.set_unit("DB02");
    auto job = jobs_->StartRestore(r);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->id : "";
  }

  // The newest assignment sent to `node`: "kind/op" ("copy-op/suspend",
  // "restore/").
  std::string Last(const std::string& node) {
    const auto assignments = channels_[node]->Assignments();
    if (assignments.empty()) return "";
    const v1::JobAssignment& a = assignments.back();
    return a.kind() == v1::JOB_COPY_OPERATION
               ? absl::StrCat("copy-op/", CopyOperationName(a.copy_op().op()))
               : absl::StrCat(JobKindName(a.kind()), "/");
  }

  // `node` finishes its newest assignment.
  void Finish(const std::string& node, v1::JobState phase = v1::JOB_SUCCEEDED,
              std::vector<std::pair<std::string, std::string>> digests = {},
              uint32_t generation = 9, std::optional<uint32_t> through = std::nullopt) {
    const auto assignments = channels_[node]->Assignments();
    ASSERT_FALSE(assignments.empty()) << node;
    const v1::JobAssignment& a = assignments.back();
    v1::JobUpdate u;
    u.set_job(a.job());
    u.set_attempt(a.attempt());
    u.set_phase(phase);
    if (phase != v1::JOB_SUCCEEDED) u.set_error("it went wrong");
    if (a.kind() == v1::JOB_RESTORE) u.mutable_restore_result()->set_last_generation(3);
    u.mutable_copy_result()->set_generation(generation);
    for (const auto& [db, sha] : digests) {
      auto* d = u.mutable_copy_result()->add_digests();
      d->set_database(db);
      d->set_sha256(sha);
      // Taken exactly at the end of `generation` unless a test says the
      // active copy was written to meanwhile.
      d->set_through_generation(through.value_or(generation));
    }
    jobs_->OnJobUpdate(node, u);
  }

  // Steps 1 to 6, each operation finished as it is sent. The restore's
  // "completing" progress never arrives: its success alone ends steps 3-4.
  // The passive copies are suspended together, and restored from the
  // repository once the active copy's restore is under way (here: done).
  void RunToStep7() {
    const std::vector<std::pair<std::string, std::string>> operations = {
        {"node2", "copy-op/suspend"}, {"node3", "copy-op/suspend"}, {"node1", "copy-op/dismount"},
        {"node1", "restore/"},        {"node2", "restore/"},        {"node3", "restore/"},
        {"node2", "copy-op/resume"},  {"node3", "copy-op/resume"}};
    for (const auto& [node, operation] : operations) {
      EXPECT_EQ(Last(node), operation) << node;
      Finish(node);
    }
    EXPECT_EQ(Last("node1"), "copy-op/digest");
  }

  // `node`'s agent reports its newest assignment as running, as it does
  // every few seconds (the report renews the plan's lease).
  void ReportRunning(const std::string& node, v1::JobState phase = v1::JOB_TRANSFERRING) {
    const v1::JobAssignment a = channels_[node]->Assignments().back();
    v1::NodeReport report;
    report.set_node(node);
    v1::RunningJob* running = report.add_running();
    running->set_job(a.job());
    running->set_attempt(a.attempt());
    running->set_phase(phase);
    jobs_->OnReport(report);
  }

  // Time passes while `nodes` report their newest assignments as running.
  void PassWhileReporting(absl::Duration d, const std::vector<std::string>& nodes) {
    for (absl::Duration passed; passed < d; passed += absl::Milliseconds(100)) {
      clock_.Advance(absl::Milliseconds(100));
      for (const std::string& node : nodes) ReportRunning(node);
    }
  }

  // `node` reports progress on its newest assignment.
  void Progress(const std::string& node, v1::JobState phase, uint64_t done, uint64_t total) {
    const v1::JobAssignment a = channels_[node]->Assignments().back();
    v1::JobUpdate u;
    u.set_job(a.job());
    u.set_attempt(a.attempt());
    u.set_phase(phase);
    u.set_bytes_done(done);
    u.set_bytes_total(total);
    jobs_->OnJobUpdate(node, u);
  }

  v1::JobInfo Info(const std::string& id) {
    auto info = jobs_->Info(id, false);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : v1::JobInfo{};
  }

  testing::TempDir dir_{"restore_plan"};
  std::unique_ptr<SqliteCatalog> catalog_;
  FakeClock clock_{absl::Now()};
  std::unique_ptr<Topology> topology_;
  std::unique_ptr<JobManager> jobs_;
  std::map<std::string, std::shared_ptr<FakeChannel>> channels_;
};

}  // namespace dagvault::coordinator
