// A job's admin-API view, and job ids (job_manager.h).
#include <mutex>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coordinator/server/job_manager.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

int64_t Us(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMicros(t); }

}  // namespace

std::string NewJobId(const std::string& kind) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> l(mu);
  return absl::StrFormat("%s-%s-%04x", kind,
                         absl::FormatTime("%Y%m%dT%H%M%S", absl::Now(), absl::UTCTimeZone()),
                         static_cast<unsigned>(rng() & 0xffff));
}

v1::JobInfo JobInfoOf(const JobRecord& r) {
  v1::JobInfo info;
  info.set_id(r.id);
  info.set_kind(JobKindOf(r.kind));
  info.set_unit(r.unit);
  info.set_type(r.type);
  info.set_source_mode(r.source_mode);
  for (const auto& p : r.preferred) info.add_preferred(p);
  info.set_state(ToProto(r.state));
  info.set_reason(r.reason);
  info.set_created_us(Us(r.created));
  info.set_updated_us(Us(r.updated));
  info.set_bytes_done(r.bytes_done);
  info.set_bytes_total(r.bytes_total);
  info.set_manifest(r.manifest);
  for (const auto& a : r.attempts) {
    v1::JobAttemptInfo* ai = info.add_attempts();
    ai->set_number(static_cast<uint32_t>(a.number));
    ai->set_node(a.node);
    ai->set_writer_instance(a.writer_instance);
    ai->set_state(ToProto(a.state));
    ai->set_started_us(Us(a.started));
    ai->set_ended_us(Us(a.ended));
    ai->set_reason(a.reason);
  }
  if (!r.plan.empty() && !info.mutable_plan()->ParseFromString(r.plan)) {
    info.set_reason(
        absl::StrCat(info.reason(), " (the restore plan in the catalog does not parse)"));
  }
  return info;
}

}  // namespace dagvault::coordinator
