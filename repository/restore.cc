#include "repository/restore.h"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/parallel.h"
#include "common/status_macros.h"
#include "common/uncached_io.h"
#include "repository/block_map.h"
#include "repository/file_digest.h"
#include "repository/index.h"
#include "repository/pack.h"
#include "repository/restore_proof.h"

namespace dagvault::repository {
namespace {

using dagvault::v1::ManifestFile;

constexpr char kPartialSuffix[] = ".dagvault-partial";

struct Placement {
  uint64_t offset;  // in the file
  uint32_t from;    // in the chunk's plaintext
  uint32_t length;
};

// One chunk to read, and where its bytes go in one file.
struct ChunkTask {
  size_t file;
  ChunkId id;
  std::vector<Placement> placements;
  // Written in the second pass, over what a first-pass task's span put
  // in its place (PlanSpans).
  bool late = false;
  // Its placements are written as one run, from the first's offset to
  // the last's end: the chunk's bytes between them are stale, and the
  // late tasks that own those places overwrite them.
  bool span = false;
};

ChunkId ToId(const std::string& bytes) {
  ChunkId id{};
  std::memcpy(id.data(), bytes.data(), std::min<size_t>(bytes.size(), 32));
  return id;
}

// The chunks a file needs, each once, with the places its bytes go.
absl::Status PlanFile(size_t index, const ManifestFile& f, const std::string& where,
                      std::vector<ChunkTask>* tasks) {
  if (!f.has_block_map()) {
    uint64_t offset = 0;
    for (const auto& c : f.chunks()) {
      if (c.id().size() != 32) return absl::DataLossError(absl::StrCat(where, ": a bad chunk id"));
      tasks->push_back({index, ToId(c.id()), {{offset, 0, c.length()}}});
      offset += c.length();
    }
    if (offset != f.size()) {
      return absl::DataLossError(
          absl::StrCat(where, ": its chunks hold ", offset, " bytes, not its size of ", f.size()));
    }
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(ValidateBlockMap(f, where));
  const auto& map = f.block_map();
  const uint32_t bs = map.block_size();
  const size_t chunks = map.chunk_ids().size() / 32;
  std::vector<int64_t> task_of(chunks, -1);
  const uint64_t count = BlockCount(f.size(), bs);
  for (uint64_t i = 0; i < count; ++i) {
    const BlockRecord r = BlockRecordAt(map.blocks(), i);
    if (r.ref == kZeroBlockRef) continue;
    if (task_of[r.chunk()] < 0) {
      task_of[r.chunk()] = static_cast<int64_t>(tasks->size());
      tasks->push_back({index, ToId(map.chunk_ids().substr(size_t{r.chunk()} * 32, 32)), {}});
    }
    const uint64_t offset = i * bs;
    const uint32_t from = r.slot() * bs;
    const auto length = static_cast<uint32_t>(std::min<uint64_t>(bs, f.size() - offset));
    // Blocks next to each other in both the file and the chunk (all of a
    // first backup's) are written with one call.
    auto& placements = (*tasks)[task_of[r.chunk()]].placements;
    if (!placements.empty() && placements.back().offset + placements.back().length == offset &&
        placements.back().from + placements.back().length == from) {
      placements.back().length += length;
    } else {
      placements.push_back({offset, from, length});
    }
  }
  return absl::OkStatus();
}

// Placements of at least this many bytes are written by direct I/O
// (measured on a chained 4 GiB restore: with the blocks allocated ahead
// and every run direct, 5.8-6.9 s; without allocating, runs under 256 KiB
// through the cache, 7.7-8.9 s, and every run through the cache,
// 10.8-12.5 s). Where the blocks could not be allocated ahead, a direct
// write into a hole allocates, one writer at a time: there only long
// runs go direct.
constexpr uint32_t kDirectWriteMin = kDirectIoAlignment;
constexpr uint32_t kDirectWriteMinUnallocated = 256 << 10;

// Whether a restored file is kept out of the page cache: all but logs,
// which replay reads next.
bool StaysOutOfCache(const ManifestFile& f) { return f.role() != "log"; }

// Threads that read restored segments back and hash them: one reads
// while another hashes, and together they keep pace with the writers
// (measured: one alone hashed 4 GiB at 1.2-1.3 GB/s and finished 3 s
// after the last write).
constexpr int kProofThreads = 3;

struct Range {
  uint64_t offset;
  uint64_t length;
};

// A placement's bytes in its file, and the task that writes them.
struct Placed {
  uint64_t offset;
  uint64_t length;
  size_t task;
};

// Per file, every placement of every task, in file order (they never
// overlap). Both the blocks to allocate and the spans are read from it.
std::vector<std::vector<Placed>> PlacementsByFile(size_t files,
                                                  const std::vector<ChunkTask>& tasks) {
  std::vector<std::vector<Placed>> by_file(files);
  for (size_t t = 0; t < tasks.size(); ++t) {
    for (const Placement& p : tasks[t].placements) {
      by_file[tasks[t].file].push_back({p.offset, p.length, t});
    }
  }
  for (auto& placed : by_file) {
    std::sort(placed.begin(), placed.end(),
              [](const Placed& a, const Placed& b) { return a.offset < b.offset; });
  }
  return by_file;
}

// Zero blocks closer together than this are allocated with the blocks
// around them (they read as zeros all the same): a hole that short saves
// little space, and each allocation is a journalled call.
constexpr uint64_t kAllocateGap = 1 << 20;

// Per file, the ranges to allocate: what the plan writes, merged across
// gaps under kAllocateGap. Longer runs of zero blocks stay holes.
std::vector<std::vector<Range>> PlannedRanges(const std::vector<std::vector<Placed>>& by_file) {
  std::vector<std::vector<Range>> ranges(by_file.size());
  for (size_t f = 0; f < by_file.size(); ++f) {
    std::vector<Range>& merged = ranges[f];
    for (const Placed& x : by_file[f]) {
      if (!merged.empty() &&
          merged.back().offset + merged.back().length + kAllocateGap > x.offset) {
        merged.back().length =
            std::max(merged.back().length, x.offset + x.length - merged.back().offset);
      } else {
        merged.push_back({x.offset, x.length});
      }
    }
  }
  return ranges;
}

// Allocates the blocks a restore will write (long runs of zero blocks
// stay holes), and says whether all were. A lack of space is found before
// any byte is written. And writes into allocated blocks are overwrites,
// which ext4 lets direct writes of one file run side by side instead of
// one at a time (measured: a chained 4 GiB restore in 8.4-9.1 s before,
// 5.9-8.3 s after, median 6.5 s of 8 runs). A filesystem that cannot
// allocate ahead is written as it is.
absl::StatusOr<bool> AllocatePlanned(File& out, const std::vector<Range>& ranges) {
  for (const Range& r : ranges) {
    // The fail point plays a filesystem that cannot allocate ahead.
    absl::Status s = FailPoint("restore.allocate");
    if (s.ok()) s = out.Allocate(r.offset, r.length);
    if (absl::IsResourceExhausted(s)) return s;
    if (!s.ok()) return false;  // an optimisation only
  }
  return true;
}

// Which tasks write their chunk as one span (ChunkTask::span), and which
// must therefore come late. In a chain, the pages a newer backup changed
// split its base chunks' runs: a 2% change over a 4 GiB database made a
// restore write 22,399 runs instead of 1,025, each a direct write into
// allocated blocks that the filesystem converts one by one. A chunk laid
// out in the file as it is in the plaintext (each block at the same
// distance from its place in the chunk) is instead written whole, and
// the newer pages are written over it afterwards. Its stale bytes cost
// little next to a write each (at most kSpanStaleMax of the span).
//
// A span is taken only where every byte between its placements is
// placed by another task (never over a zero block's hole, never past the
// end), and those tasks are late: they are written after every first-pass
// write has returned, so what stays is theirs. A late task never spans
// itself, so spans do not overlap, and late placements are the final
// bytes, disjoint from each other. The proof waits for every final byte
// (RestoreProof::Written), so no segment is read back before its late
// bytes are written.
constexpr uint64_t kSpanStaleMax = 2;  // stale bytes at most 1/2 of a span

void PlanSpans(const std::vector<std::vector<Placed>>& by_file, std::vector<ChunkTask>* tasks) {
  // The tasks that own the bytes of [begin, end), or false if a byte there
  // is placed by no task.
  auto owners = [&](size_t file, uint64_t begin, uint64_t end, std::vector<size_t>* out) {
    const auto& owned = by_file[file];
    auto it = std::lower_bound(owned.begin(), owned.end(), begin,
                               [](const Placed& o, uint64_t at) { return o.offset < at; });
    for (uint64_t at = begin; at < end; at += it->length, ++it) {
      if (it == owned.end() || it->offset != at || it->offset + it->length > end) return false;
      out->push_back(it->task);
    }
    return true;
  };
  std::vector<size_t> spanning, late;
  for (size_t t = 0; t < tasks->size(); ++t) {
    const ChunkTask& task = (*tasks)[t];
    const auto& ps = task.placements;
    if (ps.size() < 2) continue;
    const uint64_t shift = ps.front().offset - ps.front().from;
    const uint64_t span = ps.back().offset + ps.back().length - ps.front().offset;
    uint64_t placed = 0;
    bool laid_out = ps.front().offset >= ps.front().from;
    for (const Placement& p : ps) {
      laid_out = laid_out && p.offset - p.from == shift;
      placed += p.length;
    }
    if (!laid_out || (span - placed) * kSpanStaleMax > span) continue;
    std::vector<size_t> gap_owners;
    bool covered = true;
    for (size_t i = 0; covered && i + 1 < ps.size(); ++i) {
      covered = owners(task.file, ps[i].offset + ps[i].length, ps[i + 1].offset, &gap_owners);
    }
    if (!covered) continue;
    spanning.push_back(t);
    late.insert(late.end(), gap_owners.begin(), gap_owners.end());
  }
  for (size_t t : late) (*tasks)[t].late = true;
  // A task both spanning and late (its span would cover a newer span's
  // stale bytes, or the other way round) is written as it is placed.
  for (size_t t : spanning) (*tasks)[t].span = !(*tasks)[t].late;
}

// One ranged read of a pack: chunks that lie next to each other (or
// nearly: a gap is read through rather than asked for again), each with
// the task that needs it. On an object store a read is a request; on a
// filesystem it is one pread where there were several.
struct PackRead {
  const std::string* pack = nullptr;  // id
  uint64_t begin = 0;
  uint64_t end = 0;
  std::vector<std::pair<PackedChunk, size_t>> chunks;  // chunk, task index
};

// Reads at most the store's restore_read_bytes() at once (unless one chunk
// is larger), and reads through gaps up to kReadGap: a restoring thread
// holds one read's bytes, so memory stays at most workers × that for the
// reads.
constexpr uint64_t kReadGap = 64 << 10;

// The reads that fetch the chunk of every task of one pass (`late` or
// not), in pack and offset order. A chunk in no index is an error naming
// the file that needs it.
absl::StatusOr<std::vector<PackRead>> PlanReads(const ChunkIndex& index,
                                                const std::vector<ChunkTask>& tasks, bool late,
                                                const std::vector<const ManifestFile*>& files,
                                                const std::string& manifest_id, uint64_t max_read) {
  struct Located {
    const std::string* pack;
    PackedChunk chunk;
    size_t task;
  };
  std::vector<Located> located;
  located.reserve(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (tasks[i].late != late) continue;
    auto loc = index.Find(tasks[i].id);
    if (!loc) {
      return absl::DataLossError(absl::StrCat(
          "restore of manifest ", manifest_id, " file ", files[tasks[i].file]->name(), ": chunk ",
          ChunkIdHex(tasks[i].id), " is in no index (its pack or index file is missing)"));
    }
    located.push_back({loc->pack, loc->chunk, i});
  }
  std::sort(located.begin(), located.end(), [](const Located& a, const Located& b) {
    return std::tie(*a.pack, a.chunk.offset) < std::tie(*b.pack, b.chunk.offset);
  });
  std::vector<PackRead> reads;
  for (const Located& l : located) {
    const uint64_t end = l.chunk.offset + l.chunk.length;
    if (reads.empty() || *reads.back().pack != *l.pack ||
        l.chunk.offset > reads.back().end + kReadGap ||
        std::max(end, reads.back().end) - reads.back().begin > max_read) {
      reads.push_back({l.pack, l.chunk.offset, end, {}});
    }
    PackRead& r = reads.back();
    r.end = std::max(r.end, end);
    r.chunks.emplace_back(l.chunk, l.task);
  }
  return reads;
}

}  // namespace

bool IsSafeFileName(absl::string_view name) { return IsSafeRelativePath(name); }

absl::StatusOr<RestoreResult> Restore(const Repository& repo, const std::string& manifest_id,
                                      const std::string& target_dir,
                                      const RestoreOptions& options) {
  ASSIGN_OR_RETURN(std::string session, Repository::NewSessionId());
  ASSIGN_OR_RETURN(auto lock,
                   AcquireLock(repo.shared_store(), dagvault::v1::RepositoryLock::SHARED, session,
                               "restore", LockOptionsFor(repo.config(), options.lock)));
  ASSIGN_OR_RETURN(dagvault::v1::Manifest manifest, repo.ReadManifest(manifest_id));
  ASSIGN_OR_RETURN(ChunkIndex index, LoadIndex(repo.keys(), repo.store()));

  // Which files, and where.
  std::vector<const ManifestFile*> files;
  absl::flat_hash_set<std::string> wanted(options.files.begin(), options.files.end());
  if (!options.targets.empty()) {
    wanted.clear();
    for (const auto& [name, path] : options.targets) wanted.insert(name);
  }
  const bool every_file = wanted.empty();
  for (const auto& f : manifest.files()) {
    if (every_file || wanted.erase(f.name()) > 0) files.push_back(&f);
  }
  if (!wanted.empty()) {
    return absl::NotFoundError(
        absl::StrCat("manifest ", manifest_id, " has no file named ", *wanted.begin()));
  }
  std::vector<std::string> finals, partials;
  std::vector<RestoreProof::Target> proved;
  std::vector<ChunkTask> tasks;
  for (size_t i = 0; i < files.size(); ++i) {
    const ManifestFile& f = *files[i];
    if (!IsSafeFileName(f.name())) {
      return absl::DataLossError(absl::StrCat("manifest ", manifest_id, ": file name \"", f.name(),
                                              "\" would escape the target folder"));
    }
    finals.push_back(options.targets.empty() ? JoinPath(target_dir, f.name())
                                             : options.targets.at(f.name()));
    partials.push_back(finals.back() + kPartialSuffix);
    if (!options.overwrite && PathExists(finals.back())) {
      return absl::AlreadyExistsError(absl::StrCat(
          finals.back(), " exists; restore into an empty folder, or ask to overwrite"));
    }
    const std::string where = absl::StrCat("manifest ", manifest_id, " file ", f.name());
    ASSIGN_OR_RETURN(ExpectedFileDigest digest, ExpectedDigestOf(f, where));
    proved.push_back({partials.back(), f.name(), f.size(), std::move(digest), StaysOutOfCache(f)});
    RETURN_IF_ERROR(PlanFile(i, f, where, &tasks));
  }

  // Every partial file is removed again unless the restore succeeds.
  bool done = false;
  auto cleanup = [&] {
    if (done) return;
    for (const auto& p : partials) (void)RemoveDurably(p);
  };
  struct Cleanup {
    std::function<void()> f;
    ~Cleanup() { f(); }
  } guard{cleanup};

  const std::vector<std::vector<Placed>> placed = PlacementsByFile(files.size(), tasks);
  const std::vector<std::vector<Range>> written = PlannedRanges(placed);
  std::vector<uint32_t> direct_write_min(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    RETURN_IF_ERROR(CreateDirectories(DirName(partials[i])));
    // Created anew, never opened through what is already there: a symlink
    // planted at the partial name would otherwise have the restore write
    // through it. unlink(2) removes a stale partial of an earlier restore
    // (or such a link) without following it; anything that appears in
    // between is an error naming the path.
    RETURN_IF_ERROR(RemoveDurably(partials[i]));
    ASSIGN_OR_RETURN(File out, CreateNewFile(partials[i]));
    RETURN_IF_ERROR(out.Truncate(files[i]->size()));  // holes where blocks are zero
    auto allocated = AllocatePlanned(out, written[i]);
    if (!allocated.ok()) {
      return Annotate(allocated.status(), absl::StrCat("restore of manifest ", manifest_id,
                                                       " file ", files[i]->name()));
    }
    direct_write_min[i] = *allocated ? kDirectWriteMin : kDirectWriteMinUnallocated;
    RETURN_IF_ERROR(out.Close());
  }

  RestoreResult result;
  PlanSpans(placed, &tasks);
  std::vector<PackRead> passes[2];
  for (const bool late : {false, true}) {
    ASSIGN_OR_RETURN(passes[late], PlanReads(index, tasks, late, files, manifest_id,
                                             repo.store().restore_read_bytes()));
  }
  std::atomic<uint64_t> chunks_read{0}, sealed_read{0}, reads_done{0}, spans{0};
  std::mutex mu;  // status
  absl::Status status;
  // The proof follows the writes: a segment of a file is read back and
  // hashed as soon as every byte the plan puts in it is written, so
  // verification overlaps the restore instead of adding a pass at its end.
  // In a chain, nearly every segment holds a late page and waits for the
  // second pass: there the proof mostly follows it (measured: the chained
  // 4 GiB restore still went from 6.0-7.6 s to 5.3-6.2 s).
  RestoreProof proof(manifest_id, std::move(proved));
  for (const ChunkTask& t : tasks) {
    for (const Placement& p : t.placements) proof.Expect(t.file, p.offset, p.length);
  }
  auto fail = [&](absl::Status s) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (status.ok()) status = std::move(s);
    }
    proof.Abort();
  };
  auto failed = [&] {
    std::lock_guard<std::mutex> l(mu);
    return !status.ok();
  };
  // One chunk, already read and opened: its blocks go to their places.
  auto place_chunk = [&](const ChunkTask& t, absl::string_view plaintext) -> absl::Status {
    const ManifestFile& f = *files[t.file];
    const std::string where = absl::StrCat("restore of manifest ", manifest_id, " file ", f.name());
    ASSIGN_OR_RETURN(File out, File::Open(partials[t.file], O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
    const Placement whole{
        t.placements.front().offset, t.placements.front().from,
        static_cast<uint32_t>(t.placements.back().offset + t.placements.back().length -
                              t.placements.front().offset)};
    for (const Placement& p :
         t.span ? absl::MakeConstSpan(&whole, 1) : absl::MakeConstSpan(t.placements)) {
      if (uint64_t{p.from} + p.length > plaintext.size()) {
        return absl::DataLossError(absl::StrCat(where, ": chunk ", ChunkIdHex(t.id), " has ",
                                                plaintext.size(), " bytes; the map needs ",
                                                uint64_t{p.from} + p.length));
      }
      const absl::string_view bytes = plaintext.substr(p.from, p.length);
      // A database's bytes go around the page cache: it stays the mail
      // server's. Where the blocks were allocated ahead (AllocatePlanned),
      // writers of one file overwrite side by side, and every run goes
      // direct; elsewhere only long ones. What goes through the cache (a
      // file's short end, short runs) leaves it once proved.
      if (p.length >= direct_write_min[t.file] && StaysOutOfCache(f)) {
        RETURN_IF_ERROR(WriteAtUncached(out, p.offset, bytes));
      } else {
        RETURN_IF_ERROR(out.WriteAt(p.offset, bytes.data(), bytes.size()));
      }
    }
    RETURN_IF_ERROR(out.Close());
    if (t.span) ++spans;
    if (options.control != nullptr) {
      for (const Placement& p : t.placements) options.control->bytes_done += p.length;
    }
    for (const Placement& p : t.placements) proof.Written(t.file, p.offset, p.length);
    return absl::OkStatus();
  };
  // One ranged read of a pack, then each chunk in it opened where it lies.
  // A chunk's id is not recomputed: the file's digest proves the result.
  auto restore_read = [&](const PackRead& r) -> absl::Status {
    const std::string key = PackKey(*r.pack);
    // The read lands in this thread's buffer, and each chunk is opened
    // (authenticated, decrypted, decompressed) where it lies: no copy.
    thread_local AlignedBuffer read_buffer;
    thread_local ChunkReadBuffers buffers;
    auto bytes = repo.store().GetRangeInto(key, r.begin, r.end - r.begin, &read_buffer);
    if (!bytes.ok() && !absl::IsOutOfRange(bytes.status())) {
      return Annotate(bytes.status(), absl::StrCat("restore of manifest ", manifest_id));
    }
    const absl::Span<char> data = bytes.ok() ? *bytes : absl::Span<char>();
    for (size_t i = 0; i < r.chunks.size();) {
      const PackedChunk& chunk = r.chunks[i].first;
      const uint64_t at = chunk.offset - r.begin;
      // Shorter than the index says when the pack was cut short.
      const size_t have =
          at >= data.size() ? 0 : std::min<uint64_t>(chunk.length, data.size() - at);
      auto plaintext = OpenPackedChunkIn(repo.keys(), repo.store(), key, chunk,
                                         data.subspan(std::min<uint64_t>(at, data.size()), have),
                                         &buffers, /*check_id=*/false);
      if (!plaintext.ok()) {
        return Annotate(plaintext.status(),
                        absl::StrCat("restore of manifest ", manifest_id, " file ",
                                     files[tasks[r.chunks[i].second].file]->name()));
      }
      // Every task that needs this chunk (files that share it) is served
      // from the one opening: opening decrypts in place, so it happens once.
      for (; i < r.chunks.size() && r.chunks[i].first.offset == chunk.offset; ++i) {
        ++chunks_read;
        sealed_read += chunk.length;
        RETURN_IF_ERROR(place_chunk(tasks[r.chunks[i].second], *plaintext));
      }
    }
    ++reads_done;
    return absl::OkStatus();
  };
  // Twice the cores by default: a thread waiting on a pack read leaves
  // its core to another (measured: 1 GiB from cold caches on 2 cores in
  // 1.7-1.9 s with 4 threads, 2.0-2.5 s with 2).
  const int workers = options.workers > 0
                          ? options.workers
                          : std::max(2, 2 * static_cast<int>(std::thread::hardware_concurrency()));
  std::thread verifier([&] {
    absl::Status s = proof.Run(kProofThreads);
    if (!s.ok()) fail(std::move(s));
  });
  // The late pass starts when every write of the first has returned.
  for (const std::vector<PackRead>& reads : passes) {
    if (failed()) break;
    ParallelFor(
        reads.size(), static_cast<size_t>(workers),
        [&](size_t i) {
          absl::Status s = options.control != nullptr && options.control->cancel
                               ? absl::CancelledError("the restore was cancelled")
                               : restore_read(reads[i]);
          if (!s.ok()) fail(std::move(s));
        },
        failed);
  }
  verifier.join();
  RETURN_IF_ERROR(status);
  for (size_t i = 0; i < files.size(); ++i) {
    RETURN_IF_ERROR(RenameDurably(partials[i], finals[i]));
    result.bytes += files[i]->size();
  }
  done = true;
  result.files = files.size();
  result.chunks_read = chunks_read;
  result.sealed_bytes_read = sealed_read;
  result.pack_reads = reads_done;
  result.span_writes = spans;
  RETURN_IF_ERROR(lock->Release());
  return result;
}

}  // namespace dagvault::repository
