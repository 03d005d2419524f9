// What the two catalogs (sqlite_catalog.h, postgres_catalog.h) share of
// their tables: how values SQL has no type for are written (times as
// microseconds since the epoch, 0 for "never"; messages serialized), and
// the columns of jobs, attempts and backups with one decoder each, over a
// row with Text(col), Int(col) and Bytes(col). Not for use elsewhere.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "coordinator/catalog/catalog.h"
#include "google/protobuf/message_lite.h"

namespace dagvault::coordinator::codec {

inline int64_t Us(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMicros(t); }
inline absl::Time TimeOf(int64_t us) {
  return us == 0 ? absl::InfinitePast() : absl::FromUnixMicros(us);
}

inline std::string Serialized(const google::protobuf::MessageLite& m) {
  std::string s;
  (void)m.SerializeToString(&s);
  return s;
}

inline constexpr char kJobColumns[] =
    "id, kind, unit, type, source_mode, preferred, state, reason, created_us, updated_us, "
    "bytes_done, bytes_total, manifest, plan";

// A job without its attempts, from a row of kJobColumns.
template <typename Row>
absl::StatusOr<JobRecord> JobFromRow(const Row& r) {
  JobRecord j;
  j.id = r.Text(0);
  j.kind = r.Text(1);
  j.unit = r.Text(2);
  j.type = static_cast<dagvault::v1::BackupType>(r.Int(3));
  j.source_mode = r.Text(4);
  const std::string preferred = r.Text(5);
  if (!preferred.empty()) j.preferred = absl::StrSplit(preferred, ',');
  ASSIGN_OR_RETURN(j.state, ParseJobState(r.Text(6)));
  j.reason = r.Text(7);
  j.created = TimeOf(r.Int(8));
  j.updated = TimeOf(r.Int(9));
  j.bytes_done = static_cast<uint64_t>(r.Int(10));
  j.bytes_total = static_cast<uint64_t>(r.Int(11));
  j.manifest = r.Text(12);
  j.plan = r.Bytes(13);
  return j;
}

inline constexpr char kAttemptColumns[] =
    "number, node, writer_instance, state, started_us, ended_us, reason";

template <typename Row>
absl::StatusOr<JobAttempt> AttemptFromRow(const Row& r) {
  JobAttempt a;
  a.number = static_cast<int>(r.Int(0));
  a.node = r.Text(1);
  a.writer_instance = r.Text(2);
  ASSIGN_OR_RETURN(a.state, ParseJobState(r.Text(3)));
  a.started = TimeOf(r.Int(4));
  a.ended = TimeOf(r.Int(5));
  a.reason = r.Text(6);
  return a;
}

inline constexpr char kBackupColumns[] =
    "manifest, unit, type, source_node, writer_instance, low_generation, high_generation, "
    "log_signature, database_signatures, logical_bytes, new_bytes, stored_bytes, started_us, "
    "finished_us, verified, job, chain_summary";

// `catalog` names the catalog in the error when the chain summary does not
// parse.
template <typename Row>
absl::StatusOr<BackupRecord> BackupFromRow(const Row& r, const std::string& catalog) {
  BackupRecord b;
  b.manifest = r.Text(0);
  b.unit = r.Text(1);
  b.type = static_cast<dagvault::v1::BackupType>(r.Int(2));
  b.source_node = r.Text(3);
  b.writer_instance = r.Text(4);
  b.low_generation = static_cast<uint32_t>(r.Int(5));
  b.high_generation = static_cast<uint32_t>(r.Int(6));
  b.log_signature = r.Text(7);
  const std::string dbs = r.Text(8);
  if (!dbs.empty()) b.database_signatures = absl::StrSplit(dbs, ',');
  b.logical_bytes = static_cast<uint64_t>(r.Int(9));
  b.new_bytes = static_cast<uint64_t>(r.Int(10));
  b.stored_bytes = static_cast<uint64_t>(r.Int(11));
  b.started = TimeOf(r.Int(12));
  b.finished = TimeOf(r.Int(13));
  b.verified = r.Int(14) != 0;
  b.job = r.Text(15);
  if (!b.chain_summary.ParseFromString(r.Bytes(16))) {
    return absl::DataLossError(absl::StrCat("catalog ", catalog, ": the chain summary of backup ",
                                            b.manifest, " does not parse"));
  }
  return b;
}

}  // namespace dagvault::coordinator::codec
