#include "repository/backup.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/evp.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/uncached_io.h"
#include "repository/block_map.h"
#include "repository/file_digest.h"
#include "repository/index.h"
#include "repository/pack.h"

namespace dagvault::repository {
namespace {

using dagvault::v1::Manifest;
using dagvault::v1::ManifestFile;

constexpr uint32_t kNoChunk = 0xFFFFFFFFu;

ChunkId IdAt(const std::string& table, uint32_t i) {
  ChunkId id;
  std::memcpy(id.data(), table.data() + size_t{i} * 32, 32);
  return id;
}

struct FileState {
  const BackupFile* spec = nullptr;
  uint64_t size = 0;
  bool block_map = false;
  uint32_t block_size = 0;
  const ManifestFile* base = nullptr;
  std::vector<bool> base_chunk_present;  // by base chunk table index
  // Every file is proved by its tree digest, built from the leaf digests
  // the chunk ids need anyway. A log is hashed a second time for its plain
  // SHA-256, which the next log's link hash names (file_digest.h).
  FileTreeDigest tree;
  bool plain_sha = false;
  Sha256 sha;
  size_t last_task = 0;
  std::atomic<uint64_t> new_bytes{0};
  std::atomic<uint64_t> new_blocks{0};
};

struct Task {
  size_t file = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
};

struct TaskResult {
  bool read = false;  // data holds the segment's bytes
  bool processed = false;
  // The segment's bytes: kept until a log's plain SHA-256 has taken them,
  // else only until the segment is processed. Aligned for direct I/O.
  AlignedBuffer data;
  std::string leaves;  // the leaf digests of the whole segment, in order
  // Fixed chunks: the chunk (none for an empty file).
  std::optional<ChunkId> chunk;
  // Block maps: the chunks this segment refers to, and per block the
  // hash, an index into `chunks` (kNoChunk for a zero block) and a slot.
  std::vector<ChunkId> chunks;
  struct Block {
    uint64_t hash;
    uint32_t chunk;
    uint32_t slot;
  };
  std::vector<Block> blocks;
};

// Packs written (uploaded) at once: the option, else the store's own
// choice (one for a folder, where a second fsync adds nothing; several for
// an object store, whose requests each wait on the network and on the
// digests of their body).
int Uploads(const Repository& repo, const BackupOptions& options) {
  return options.uploads > 0 ? options.uploads : repo.store().parallel_writes();
}
// Full packs waiting for a writer: one, so that the packs in memory stay
// at 1 being filled + 1 waiting + those being written (measured on 2
// cores: a second waiting pack made a first backup no faster, and took
// 37 MiB more).
constexpr size_t kQueuedPacks = 1;
// Threads that read segments ahead of the workers (BackupRun::Reader).
constexpr int kReaders = 2;

class BackupRun {
 public:
  BackupRun(const Repository& repo, const ChunkIndex& index, const BackupOptions& options,
            int zstd_level, PutOptions put)
      : repo_(repo),
        index_(index),
        options_(options),
        put_(std::move(put)),
        seal_{zstd_level},
        pack_writer_(kQueuedPacks, Uploads(repo, options)),
        pack_(NewPack()),
        log_(logging::Get("repository.backup")) {}

  absl::Status Plan(const std::vector<BackupFile>& files, const Manifest* base);
  absl::Status Run(int workers);
  absl::StatusOr<std::vector<PackInfo>> FinishPacks();

  std::vector<ManifestFile>& files_out() { return files_out_; }
  uint64_t new_bytes() const { return new_bytes_; }
  uint64_t stored_bytes() const { return stored_bytes_; }

 private:
  // Readers read segments ahead of the workers, which compress, encrypt
  // and store them: direct reads wait on the device, and without
  // readahead a worker reading its own segments would leave its core idle
  // while it waits.
  void Reader();
  absl::Status Read(size_t t);
  void Worker();
  absl::Status Process(size_t t);
  absl::Status ProcessBlocks(const Task& task, FileState& f, TaskResult& r);
  // Stores a chunk unless the repository or this session has it; returns
  // whether it was new.
  absl::StatusOr<bool> StoreChunk(const ChunkId& id, absl::string_view plaintext);
  void Completed(size_t t);
  absl::Status Finalize(size_t file);
  void Fail(const absl::Status& s);
  // Runs one step of a thread unless the backup was cancelled; on failure
  // stops every thread and returns false.
  template <typename F>
  bool Step(F step) {
    absl::Status s = options_.control != nullptr && options_.control->cancel
                         ? absl::CancelledError("the backup was cancelled")
                         : step();
    if (!s.ok()) Fail(s);
    return s.ok();
  }
  std::unique_ptr<PackWriter> NewPack() {
    // Room for the target and one more chunk of new blocks, sealed.
    return std::make_unique<PackWriter>(repo_.keys(), repo_.store(), put_,
                                        pack_writer_.SpareBuffer(),
                                        repo_.config().pack_target_bytes() + (5 << 20));
  }

  const Repository& repo_;
  const ChunkIndex& index_;
  const BackupOptions& options_;
  const PutOptions put_;  // every pack's retention
  SealOptions seal_;
  std::vector<std::unique_ptr<FileState>> files_;
  std::vector<ManifestFile> files_out_;
  std::vector<Task> tasks_;
  std::vector<TaskResult> results_;

  // next_read_, next_, frontier_, hashing_, status_, results_[].read and .processed
  std::mutex order_mu_;
  std::condition_variable window_cv_;
  size_t next_read_ = 0;
  size_t next_ = 0;
  size_t frontier_ = 0;
  size_t window_ = 2;
  bool hashing_ = false;
  absl::Status status_;

  std::mutex store_mu_;  // session_ids_, pack_
  absl::flat_hash_set<ChunkId> session_ids_;
  BackgroundPackWriter pack_writer_;  // before pack_, which NewPack fills from it
  std::unique_ptr<PackWriter> pack_;
  std::vector<AlignedBuffer> free_buffers_;  // under order_mu_: read buffers to reuse
  std::atomic<uint64_t> new_bytes_{0};
  std::atomic<uint64_t> stored_bytes_{0};
  std::shared_ptr<spdlog::logger> log_;
};

absl::Status BackupRun::Plan(const std::vector<BackupFile>& files, const Manifest* base) {
  absl::flat_hash_set<std::string> names;
  for (const BackupFile& spec : files) {
    if (spec.name.empty() || !names.insert(spec.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("file ", spec.path, ": its manifest name \"",
                                                     spec.name,
                                                     "\" is empty or used twice in this backup"));
    }
    ASSIGN_OR_RETURN(File file, File::OpenReadOnly(spec.path));
    ASSIGN_OR_RETURN(uint64_t size, file.Size());
    auto f = std::make_unique<FileState>();
    f->spec = &spec;
    f->size = size;
    f->plain_sha = spec.role == "log";
    f->block_map = spec.role == "database" || size >= options_.block_map_min_size;
    const uint64_t segment = f->block_map ? 0 : options_.fixed_chunk_size;
    if (!f->block_map && (segment == 0 || segment % kLeafSize != 0)) {
      // Chunks must start on leaves, or their leaf digests would not be
      // the file's (the tree digest).
      return absl::InvalidArgumentError(
          absl::StrCat("fixed chunk size ", segment, " is not a positive multiple of ", kLeafSize));
    }
    if (f->block_map) {
      f->block_size = BlockSizeFor(size, options_.page_size);
      const uint64_t seg_bytes = uint64_t{BlocksPerChunk(f->block_size)} * f->block_size;
      for (int k = 0; base != nullptr && k < base->files_size(); ++k) {
        const ManifestFile& bf = base->files(k);
        if (bf.name() != spec.name || !bf.has_block_map() ||
            bf.block_map().block_size() != f->block_size) {
          continue;
        }
        absl::Status valid =
            ValidateBlockMap(bf, absl::StrCat("base manifest ", base->id(), " file ", bf.name()));
        if (!valid.ok()) {
          log_->warn("not comparing {} with its base: {}", spec.name, valid.ToString());
          break;
        }
        f->base = &bf;
        // A block whose chunk is gone (pruned, or its index lost) is stored again.
        const std::string& table = bf.block_map().chunk_ids();
        f->base_chunk_present.resize(table.size() / 32);
        for (size_t i = 0; i < f->base_chunk_present.size(); ++i) {
          f->base_chunk_present[i] = index_.Contains(IdAt(table, i));
        }
        break;
      }
      for (uint64_t off = 0; off < size; off += seg_bytes) {
        tasks_.push_back(
            {files_.size(), off, static_cast<uint32_t>(std::min(seg_bytes, size - off))});
      }
    } else {
      for (uint64_t off = 0; off < size; off += segment) {
        tasks_.push_back(
            {files_.size(), off, static_cast<uint32_t>(std::min(segment, size - off))});
      }
    }
    if (size == 0) tasks_.push_back({files_.size(), 0, 0});
    f->last_task = tasks_.size() - 1;
    files_.push_back(std::move(f));
  }
  files_out_.resize(files_.size());
  results_.resize(tasks_.size());
  return absl::OkStatus();
}

absl::Status BackupRun::Run(int workers) {
  // Two segments per worker, and one for each reader to fill ahead.
  window_ = 2 * static_cast<size_t>(workers) + kReaders;
  std::vector<std::thread> threads;
  for (int i = 0; i < kReaders; ++i) threads.emplace_back([this] { Reader(); });
  for (int i = 0; i < workers; ++i) threads.emplace_back([this] { Worker(); });
  for (auto& t : threads) t.join();
  std::lock_guard<std::mutex> l(order_mu_);
  if (status_.ok() && frontier_ != tasks_.size()) {
    return absl::InternalError("backup ended with segments not hashed");
  }
  return status_;
}

void BackupRun::Fail(const absl::Status& s) {
  std::lock_guard<std::mutex> l(order_mu_);
  if (status_.ok()) status_ = s;
  window_cv_.notify_all();
}

void BackupRun::Reader() {
  while (true) {
    size_t t;
    {
      std::unique_lock<std::mutex> l(order_mu_);
      window_cv_.wait(l, [&] {
        return !status_.ok() || next_read_ >= tasks_.size() || next_read_ < frontier_ + window_;
      });
      if (!status_.ok() || next_read_ >= tasks_.size()) return;
      t = next_read_++;
      // A buffer already used: reusing it saves faulting in fresh pages
      // for every segment.
      if (!free_buffers_.empty()) {
        results_[t].data = std::move(free_buffers_.back());
        free_buffers_.pop_back();
      }
    }
    if (!Step([&] { return Read(t); })) return;
    std::lock_guard<std::mutex> l(order_mu_);
    results_[t].read = true;
    window_cv_.notify_all();
  }
}

absl::Status BackupRun::Read(size_t t) {
  const Task& task = tasks_[t];
  FileState& f = *files_[task.file];
  TaskResult& r = results_[t];
  r.data.resize(task.length);  // a reused buffer keeps its old bytes: no zero fill
  if (task.length == 0) return absl::OkStatus();
  // Around the page cache: a Full reads the whole snapshot once, and
  // through the cache it would push the mail server's pages out.
  ASSIGN_OR_RETURN(UncachedReader file, UncachedReader::Open(f.spec->path));
  size_t got = task.length;
  if (file.file().IsHole(task.offset, task.length)) {
    std::memset(r.data.data(), 0, task.length);  // a hole of a sparse file is not read
  } else {
    ASSIGN_OR_RETURN(got, file.ReadAtMost(task.offset, task.length, &r.data));
  }
  if (got != task.length) {
    return absl::AbortedError(absl::StrCat("file ", f.spec->path,
                                           " shrank while it was backed up (", f.size,
                                           " bytes when the backup began)"));
  }
  return absl::OkStatus();
}

void BackupRun::Worker() {
  while (true) {
    size_t t;
    {
      std::unique_lock<std::mutex> l(order_mu_);
      // The next segment in order, once a reader has it.
      window_cv_.wait(
          l, [&] { return !status_.ok() || next_ >= tasks_.size() || results_[next_].read; });
      if (!status_.ok() || next_ >= tasks_.size()) return;
      t = next_++;
    }
    if (!Step([&] { return Process(t); })) return;
    Completed(t);
  }
}

absl::Status BackupRun::Process(size_t t) {
  const Task& task = tasks_[t];
  FileState& f = *files_[task.file];
  TaskResult& r = results_[t];
  if (options_.observer != nullptr) {
    RETURN_IF_ERROR(options_.observer->OnSegment(task.file, task.offset, r.data));
  }
  if (options_.control != nullptr) options_.control->bytes_done += task.length;
  if (f.block_map) return ProcessBlocks(task, f, r);
  if (task.length == 0) return absl::OkStatus();
  AppendLeafDigests(r.data, &r.leaves);
  const ChunkId id = repo_.keys().IdFromLeafDigests(r.leaves);
  ASSIGN_OR_RETURN(bool stored, StoreChunk(id, r.data.view()));
  if (stored) f.new_bytes += task.length;
  r.chunk = id;
  return absl::OkStatus();
}

absl::Status BackupRun::ProcessBlocks(const Task& task, FileState& f, TaskResult& r) {
  const uint32_t bs = f.block_size;
  const uint64_t first = task.offset / bs;
  const uint64_t base_count = f.base ? BlockCount(f.base->size(), bs) : 0;
  absl::flat_hash_map<uint32_t, uint32_t> base_local;  // base table index → r.chunks
  std::string fresh;
  std::string fresh_leaves;  // the leaf digests of the new blocks, in order
  std::string leaves;        // of the current block
  uint32_t fresh_blocks = 0;
  uint32_t fresh_local = kNoChunk;
  // While every block so far is new, `fresh` would equal the start of
  // r.data: it is only built (from the new blocks before `off`) once a
  // block turns out not to be.
  bool all_fresh = true;
  auto StopSharing = [&](uint64_t off) {
    if (!all_fresh) return;
    all_fresh = false;
    fresh.assign(r.data.data(), off);
  };
  for (uint64_t off = 0; off < task.length; off += bs) {
    const absl::string_view block =
        r.data.view().substr(off, std::min<uint64_t>(bs, task.length - off));
    if (IsAllZero(block)) {
      r.blocks.push_back({0, kNoChunk, 0});
      AppendZeroLeafDigests(block.size(), &r.leaves);
      StopSharing(off);
      continue;
    }
    leaves.clear();
    AppendLeafDigests(block, &leaves);
    r.leaves += leaves;
    const uint64_t hash = ShortBlockHashFromLeafDigests(leaves);
    const uint64_t i = first + off / bs;
    if (i < base_count) {
      const BlockRecord b = BlockRecordAt(f.base->block_map().blocks(), i);
      if (b.ref != kZeroBlockRef && b.hash == hash && f.base_chunk_present[b.chunk()]) {
        auto [it, added] = base_local.try_emplace(b.chunk(), r.chunks.size());
        if (added) r.chunks.push_back(IdAt(f.base->block_map().chunk_ids(), b.chunk()));
        r.blocks.push_back({hash, it->second, b.slot()});
        StopSharing(off);
        continue;
      }
    }
    if (fresh_local == kNoChunk) {
      fresh_local = r.chunks.size();
      r.chunks.emplace_back();  // its id once its blocks are known
    }
    r.blocks.push_back({hash, fresh_local, fresh_blocks++});
    if (!all_fresh) fresh.append(block.data(), block.size());
    fresh_leaves += leaves;  // blocks are whole leaves, so these are the chunk's leaves
  }
  if (fresh_local != kNoChunk) {
    // When every block is new (a first backup), the segment itself is the
    // chunk and was not copied.
    const absl::string_view chunk = all_fresh ? r.data.view() : fresh;
    const ChunkId id = repo_.keys().IdFromLeafDigests(fresh_leaves);
    r.chunks[fresh_local] = id;
    ASSIGN_OR_RETURN(bool stored, StoreChunk(id, chunk));
    if (stored) f.new_bytes += chunk.size();
    f.new_blocks += fresh_blocks;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> BackupRun::StoreChunk(const ChunkId& id, absl::string_view plaintext) {
  if (index_.Contains(id)) return false;
  {
    std::lock_guard<std::mutex> l(store_mu_);
    if (!session_ids_.insert(id).second) return false;
  }
  // One sealing buffer per worker thread, reused for every chunk.
  thread_local std::vector<char> scratch;
  ASSIGN_OR_RETURN(absl::string_view sealed,
                   SealChunkTo(repo_.keys(), id, plaintext, seal_, &scratch));
  {
    std::lock_guard<std::mutex> l(store_mu_);
    RETURN_IF_ERROR(pack_->Add(id, std::string_view(sealed.data(), sealed.size()),
                               static_cast<uint32_t>(plaintext.size())));
    if (pack_->size() >= repo_.config().pack_target_bytes()) {
      // Written by the pack writer's threads: the workers go on
      // compressing. Submitted under the lock, so that while the writers
      // are behind, the other workers wait here with their sealed chunk
      // instead of each filling (and holding) another full pack. The
      // next pack is made once this one is queued, so that its buffer is
      // one a writer has finished with: the packs in memory stay at
      // uploads + 2 (backup.h).
      absl::Status submitted = pack_writer_.Submit(std::move(pack_));
      pack_ = NewPack();
      RETURN_IF_ERROR(submitted);
    }
  }
  new_bytes_ += plaintext.size();
  stored_bytes_ += sealed.size();
  return true;
}

void BackupRun::Completed(size_t t) {
  std::unique_lock<std::mutex> l(order_mu_);
  results_[t].processed = true;
  if (!files_[tasks_[t].file]->plain_sha) {
    // Only the leaf digests are hashed further: the buffer is free now.
    free_buffers_.push_back(std::move(results_[t].data));
  }
  if (hashing_) return;  // the worker hashing will take this one too
  hashing_ = true;
  while (status_.ok() && frontier_ < tasks_.size() && results_[frontier_].processed) {
    const size_t i = frontier_;
    l.unlock();
    FileState& f = *files_[tasks_[i].file];
    f.tree.AddLeafDigests(results_[i].leaves);
    std::string().swap(results_[i].leaves);
    if (f.plain_sha) f.sha.Update(results_[i].data);
    absl::Status s = i == f.last_task ? Finalize(tasks_[i].file) : absl::OkStatus();
    l.lock();
    // A log's buffer, kept for its plain SHA-256 until now (any other
    // file's went back when it was processed).
    if (f.plain_sha) free_buffers_.push_back(std::move(results_[i].data));
    if (!s.ok() && status_.ok()) status_ = s;
    ++frontier_;
    window_cv_.notify_all();
  }
  hashing_ = false;
}

absl::Status BackupRun::Finalize(size_t file) {
  FileState& f = *files_[file];
  ManifestFile& mf = files_out_[file];
  mf.set_name(f.spec->name);
  mf.set_role(f.spec->role);
  mf.set_component(f.spec->component);
  mf.set_generation(f.spec->generation);
  mf.set_size(f.size);
  auto bytes = [](const Sha256Digest& d) {
    return std::string(reinterpret_cast<const char*>(d.data()), d.size());
  };
  mf.set_tree_sha256(bytes(f.tree.Finish()));
  if (f.plain_sha) mf.set_sha256(bytes(f.sha.Finish()));
  mf.set_new_bytes(f.new_bytes);
  mf.set_new_blocks(f.new_blocks);
  size_t first_task = f.last_task;
  while (first_task > 0 && tasks_[first_task - 1].file == file) --first_task;
  if (!f.block_map) {
    for (size_t t = first_task; t <= f.last_task; ++t) {
      if (!results_[t].chunk) continue;
      auto* c = mf.add_chunks();
      c->set_id(std::string(reinterpret_cast<const char*>(results_[t].chunk->data()), 32));
      c->set_length(tasks_[t].length);
    }
    return absl::OkStatus();
  }
  auto* map = mf.mutable_block_map();
  map->set_block_size(f.block_size);
  absl::flat_hash_map<ChunkId, uint32_t> table;
  std::string* ids = map->mutable_chunk_ids();
  std::string* blocks = map->mutable_blocks();
  blocks->reserve(BlockCount(f.size, f.block_size) * kBlockRecordSize);
  for (size_t t = first_task; t <= f.last_task; ++t) {
    TaskResult& r = results_[t];
    for (const auto& b : r.blocks) {
      if (b.chunk == kNoChunk) {
        AppendBlockRecord({0, kZeroBlockRef}, blocks);
        continue;
      }
      auto [it, added] = table.try_emplace(r.chunks[b.chunk], table.size());
      if (added) {
        if (it->second >= kMaxChunkTableSize) {
          return absl::ResourceExhaustedError(
              absl::StrCat("file ", f.spec->path, ": its block map would refer to more than ",
                           kMaxChunkTableSize, " chunks"));
        }
        ids->append(reinterpret_cast<const char*>(it->first.data()), 32);
      }
      AppendBlockRecord({b.hash, BlockRecord::Ref(it->second, b.slot)}, blocks);
    }
    std::vector<TaskResult::Block>().swap(r.blocks);
    std::vector<ChunkId>().swap(r.chunks);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PackInfo>> BackupRun::FinishPacks() {
  if (pack_->chunk_count() > 0) RETURN_IF_ERROR(pack_writer_.Submit(std::move(pack_)));
  return pack_writer_.Close();
}

// Under Object Lock a backup is only as immutable as the oldest object it
// needs. Chunks it found already stored (deduplicated, or unchanged blocks
// of its base) live in older packs, found through older index files, whose
// dates may be earlier than this backup's: each is extended to `until`
// (only ever later), so that no one can remove what this backup needs
// while it is itself retained.
absl::Status KeepReusedDataUntil(const Repository& repo, const ChunkIndex& index,
                                 const Manifest& manifest, absl::Time until) {
  std::set<std::string> packs, index_files;
  for (const auto& f : manifest.files()) {
    ForEachChunkId(f, [&](const ChunkId& id) {
      std::optional<ChunkLocation> loc = index.Find(id);
      if (!loc) return;  // written by this backup, under its own date
      packs.insert(*loc->pack);
      if (!loc->index_file->empty()) index_files.insert(*loc->index_file);
    });
  }
  for (const auto& id : packs) {
    RETURN_IF_ERROR(Annotate(repo.store().ExtendRetention(PackKey(id), until),
                             absl::StrCat("pack ", id, " holds chunks this backup reuses")));
  }
  for (const auto& key : index_files) {
    RETURN_IF_ERROR(
        Annotate(repo.store().ExtendRetention(key, until), "it lists packs this backup reuses"));
  }
  if (!packs.empty()) {
    logging::Get("repository.backup")
        ->debug("kept {} reused packs and {} index files until {}", packs.size(),
                index_files.size(), FormatUtc(until));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Manifest>> FindBase(const Repository& repo, const Manifest& header,
                                                 const BackupOptions& options) {
  if (options.base_manifest.empty()) return std::optional<Manifest>();
  if (options.base_manifest != "auto") {
    ASSIGN_OR_RETURN(Manifest base, repo.ReadManifest(options.base_manifest));
    return std::optional<Manifest>(std::move(base));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> ids, repo.ListManifests());
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    auto m = repo.ReadManifest(*it);
    if (!m.ok()) {
      // Not fatal: without a base every block is stored, which is safe.
      logging::Get("repository.backup")
          ->warn("manifest {} not considered as a base: {}", *it, m.status().ToString());
      continue;
    }
    if (m->unit() == header.unit()) return std::optional<Manifest>(std::move(*m));
  }
  return std::optional<Manifest>();
}

}  // namespace

absl::StatusOr<Manifest> Backup(const Repository& repo, const std::vector<BackupFile>& files,
                                const Manifest& header, const BackupOptions& options) {
  const absl::Time started = absl::Now();
  if (options.zstd_level >= 0) RETURN_IF_ERROR(ValidateZstdLevel(options.zstd_level));
  ASSIGN_OR_RETURN(std::string session, Repository::NewSessionId());
  ASSIGN_OR_RETURN(auto lock,
                   AcquireLock(repo.shared_store(), dagvault::v1::RepositoryLock::SHARED, session,
                               "backup", LockOptionsFor(repo.config(), options.lock)));
  ASSIGN_OR_RETURN(ChunkIndex index, LoadIndex(repo.keys(), repo.store()));
  ASSIGN_OR_RETURN(std::optional<Manifest> base, FindBase(repo, header, options));
  const int workers = options.workers > 0
                          ? options.workers
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int level = options.zstd_level >= 0 ? options.zstd_level : repo.config().zstd_level();
  // On a repository with Object Lock, everything this backup writes is
  // immutable until one date, so its packs, index and manifest expire
  // together (prune relies on that).
  const PutOptions put = repo.BackupPutOptions(started, options.retain_at_least);
  BackupRun run(repo, index, options, level, put);
  RETURN_IF_ERROR(run.Plan(files, base ? &*base : nullptr));
  // A failure while this session's lock was lost (a prune judged it stale,
  // broke it and removed the session's files) is reported as the lock's
  // loss, its cause, not as the missing file it tripped over.
  auto lost_lock_or = [&](const absl::Status& failed) {
    if (absl::Status held = lock->CheckStillHeld(); !held.ok()) {
      return Annotate(
          held, absl::StrCat("the backup's manifest was not written (", failed.message(), ")"));
    }
    return failed;
  };
  if (absl::Status ran = run.Run(workers); !ran.ok()) return lost_lock_or(ran);
  // Packs, then the index that finds them, then the manifest that needs
  // both: a crash before the manifest leaves only unreferenced data.
  absl::StatusOr<std::vector<PackInfo>> finished = run.FinishPacks();
  if (!finished.ok()) return lost_lock_or(finished.status());
  const std::vector<PackInfo>& packs = *finished;
  if (!packs.empty()) {
    if (absl::Status indexed = WriteIndexFile(repo.keys(), repo.store(), session, packs, put);
        !indexed.ok()) {
      return lost_lock_or(indexed);
    }
  }
  DAGVAULT_CRASH_POINT("repository.backup.index_written");

  Manifest manifest = header;
  manifest.set_format_version(kRepositoryFormatVersion);
  manifest.set_id(session);
  manifest.set_session(session);
  if (base) manifest.set_base_manifest(base->id());
  manifest.set_started_us(absl::ToUnixMicros(started));
  uint64_t logical = 0;
  for (auto& f : run.files_out()) {
    logical += f.size();
    *manifest.add_files() = std::move(f);
  }
  manifest.set_logical_bytes(logical);
  manifest.set_new_bytes(run.new_bytes());
  manifest.set_stored_bytes(run.stored_bytes());
  char host[256] = {};
  (void)gethostname(host, sizeof(host) - 1);
  manifest.set_host(host);
  manifest.set_finished_us(absl::ToUnixMicros(absl::Now()));
  if (options.observer != nullptr) RETURN_IF_ERROR(options.observer->BeforeCommit(&manifest));
  if (options.control != nullptr && options.control->cancel) {
    return absl::CancelledError("the backup was cancelled before its manifest was written");
  }
  // The manifest makes the session's packs live. If the lock was broken
  // meanwhile, a prune may have removed them (or be about to): the backup
  // fails rather than commit a manifest whose data may be gone.
  // Under Object Lock, the keys that open this backup stay as long as it.
  // So do the older packs and index files that hold the chunks it reuses.
  if (put.retain_until) {
    RETURN_IF_ERROR(
        Annotate(repo.KeepKeysUntil(*put.retain_until), "the backup's manifest was not written"));
    RETURN_IF_ERROR(Annotate(KeepReusedDataUntil(repo, index, manifest, *put.retain_until),
                             "the backup's manifest was not written"));
  }
  RETURN_IF_ERROR(Annotate(lock->CheckStillHeld(), "the backup's manifest was not written"));
  DAGVAULT_CRASH_POINT("repository.backup.lock_checked");
  if (absl::Status written = repo.WriteManifest(manifest, put); !written.ok()) {
    // The write may have failed after it landed (the folder's fsync, a lost
    // response): a backup that fails leaves no manifest that the catalog
    // would not list. (Under retention it cannot be taken back: check
    // names it.)
    absl::Status removed = absl::OkStatus();
    if (repo.store().Head(Repository::ManifestKey(manifest.id())).ok()) {
      removed = repo.RemoveManifest(manifest.id());
    }
    return Annotate(written,
                    removed.ok()
                        ? absl::StrCat("manifest ", manifest.id(), " was not committed")
                        : absl::StrCat("manifest ", manifest.id(), " may be left half written (",
                                       removed.message(), "); run check before trusting it"));
  }
  if (absl::Status held = lock->CheckStillHeld(); !held.ok()) {
    // Lost between the check and the write: take the manifest back, so
    // that nothing refers to data a prune may be removing.
    const absl::Status removed = repo.RemoveManifest(manifest.id());
    return Annotate(held,
                    removed.ok()
                        ? absl::StrCat("manifest ", manifest.id(), " was removed again")
                        : absl::StrCat("manifest ", manifest.id(), " could not be removed again (",
                                       removed.message(), "); run check before trusting it"));
  }
  // Committed and proven: a lock that does not go away cleanly is the
  // next taker's stale lock, not this backup's failure.
  if (absl::Status released = lock->Release(); !released.ok()) {
    logging::Get("repository.backup")
        ->warn("backup {}: its repository lock was not removed: {}", manifest.id(), released);
  }
  return manifest;
}

}  // namespace dagvault::repository
