#include "repository/restore_proof.h"

#include <fcntl.h>

#include <algorithm>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/uncached_io.h"
#include "repository/crypto.h"

namespace dagvault::repository {
namespace {

// How many segments behind the one being proved a restored database's
// pages are dropped from the page cache: far enough that their writeback,
// started when they were proved, is done.
constexpr uint64_t kDropLag = 4;

}  // namespace

RestoreProof::RestoreProof(std::string manifest_id, std::vector<Target> targets)
    : manifest_id_(std::move(manifest_id)), targets_(std::move(targets)) {
  files_.resize(targets_.size());
  for (size_t i = 0; i < targets_.size(); ++i) {
    const uint64_t segments = (targets_[i].size + kSegment - 1) / kSegment;
    files_[i].expected.assign(segments, 0);
    files_[i].written.assign(segments, 0);
    for (uint64_t s = 0; s < segments; ++s) jobs_.push_back({i, s});
  }
}

void RestoreProof::Add(std::vector<uint64_t>* counts, uint64_t offset, uint64_t length) {
  while (length > 0) {
    const uint64_t seg = offset / kSegment;
    const uint64_t n = std::min(length, (seg + 1) * kSegment - offset);
    if (seg < counts->size()) (*counts)[seg] += n;
    offset += n;
    length -= n;
  }
}

void RestoreProof::Expect(size_t file, uint64_t offset, uint64_t length) {
  Add(&files_[file].expected, offset, length);
}

void RestoreProof::Written(size_t file, uint64_t offset, uint64_t length) {
  std::lock_guard<std::mutex> l(mu_);
  Add(&files_[file].written, offset, length);
  changed_.notify_all();
}

void RestoreProof::Abort() { Stop(absl::OkStatus()); }

void RestoreProof::Stop(absl::Status s) {
  std::lock_guard<std::mutex> l(mu_);
  if (!stopped_) status_ = std::move(s);
  stopped_ = true;
  changed_.notify_all();
}

absl::Status RestoreProof::Run(int threads) {
  // An empty file has no segment to wait for: its digest is of nothing.
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (files_[i].expected.empty()) RETURN_IF_ERROR(Finish(i));
  }
  std::vector<std::thread> helpers;
  for (int i = 1; i < threads; ++i) helpers.emplace_back([this] { RunJobs(); });
  RunJobs();
  for (auto& t : helpers) t.join();
  std::lock_guard<std::mutex> l(mu_);
  return status_;
}

void RestoreProof::RunJobs() {
  for (;;) {
    const size_t j = next_job_.fetch_add(1);
    if (j >= jobs_.size()) return;
    absl::Status s = ProveSegment(jobs_[j]);
    if (!s.ok()) {
      Stop(std::move(s));
      return;
    }
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return;
  }
}

absl::Status RestoreProof::ProveSegment(const Job& job) {
  const Target& target = targets_[job.file];
  FileState& state = files_[job.file];
  {
    // Every byte the plan puts in the segment is written.
    std::unique_lock<std::mutex> l(mu_);
    changed_.wait(
        l, [&] { return stopped_ || state.written[job.segment] == state.expected[job.segment]; });
    if (stopped_) return absl::OkStatus();
  }
  const uint64_t off = job.segment * kSegment;
  const size_t n = std::min<uint64_t>(kSegment, target.size - off);
  const bool tree = target.expected.tree;
  // Per thread: the bytes read back, and their leaf digests.
  thread_local AlignedBuffer back;
  thread_local std::string leaves;
  ASSIGN_OR_RETURN(File in, File::Open(target.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  absl::string_view bytes;  // a hole reads as zeros
  if (target.stays_out_of_cache) {
    ASSIGN_OR_RETURN(UncachedReader reader, UncachedReader::Open(target.path));
    ASSIGN_OR_RETURN(size_t got, reader.ReadAtMost(off, n, &back));
    if (got != n) {
      return absl::DataLossError(absl::StrCat(target.path, ": ", got, " bytes at offset ", off,
                                              ", where ", n, " were written"));
    }
    bytes = back.view();
  } else {
    back.resize(n);
    RETURN_IF_ERROR(in.ReadAt(off, back.data(), n));
    bytes = back.view();
  }
  // Segments start on leaves: their leaf digests are independent of
  // every other segment's, so threads compute them side by side.
  if (tree) {
    leaves.clear();
    AppendLeafDigests(bytes, &leaves);
  }
  // Start writing the segment out now, so the fsync at the end of the
  // file finds little left to do. Only a hint: errors surface there.
  (void)sync_file_range(in.fd(), static_cast<off_t>(off), static_cast<off_t>(n),
                        SYNC_FILE_RANGE_WRITE);
  if (target.stays_out_of_cache && job.segment >= kDropLag) {
    // An earlier segment, written out by now: waited for, then dropped
    // from the cache.
    const uint64_t old = (job.segment - kDropLag) * kSegment;
    (void)sync_file_range(
        in.fd(), static_cast<off_t>(old), kSegment,
        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    DropCachedPages(in, old, kSegment);
  }
  {
    // The digest takes segments in file order: this one's turn.
    std::unique_lock<std::mutex> l(mu_);
    changed_.wait(l, [&] { return stopped_ || state.folded == job.segment; });
    if (stopped_) return absl::OkStatus();
  }
  // Only the thread whose segment is next touches the file's digest.
  if (tree) {
    state.tree.AddLeafDigests(leaves);
  } else {
    state.sha.Update(bytes);
  }
  bool last;
  {
    std::lock_guard<std::mutex> l(mu_);
    ++state.folded;
    last = state.folded == state.expected.size();
    changed_.notify_all();
  }
  return last ? Finish(job.file) : absl::OkStatus();
}

absl::Status RestoreProof::Finish(size_t file) {
  const Target& target = targets_[file];
  FileState& state = files_[file];
  const Sha256Digest d = target.expected.tree ? state.tree.Finish() : state.sha.Finish();
  const std::string got(reinterpret_cast<const char*>(d.data()), d.size());
  if (got != target.expected.digest) {
    return absl::DataLossError(absl::StrCat(
        "restore of manifest ", manifest_id_, " file ", target.name, ": the restored bytes ",
        target.expected.tree ? "have the tree digest " : "hash to ", absl::BytesToHexString(got),
        ", not the backed-up ", absl::BytesToHexString(target.expected.digest),
        "; the file was not put in place"));
  }
  ASSIGN_OR_RETURN(File in, File::Open(target.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  RETURN_IF_ERROR(in.Sync());
  if (target.stays_out_of_cache) DropCachedPages(in);
  return absl::OkStatus();
}

}  // namespace dagvault::repository
