#include "repository/restore.h"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "repository/block_map.h"
#include "repository/index.h"
#include "repository/pack.h"

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
    (*tasks)[task_of[r.chunk()]].placements.push_back(
        {offset, r.slot() * bs, static_cast<uint32_t>(std::min<uint64_t>(bs, f.size() - offset))});
  }
  return absl::OkStatus();
}

std::string HexDigest(const std::string& bytes) { return absl::BytesToHexString(bytes); }

}  // namespace

absl::StatusOr<RestoreResult> Restore(const Repository& repo, const std::string& manifest_id,
                                      const std::string& target_dir,
                                      const RestoreOptions& options) {
  ASSIGN_OR_RETURN(std::string session, Repository::NewSessionId());
  ASSIGN_OR_RETURN(auto lock, AcquireLock(repo.root(), dagvault::v1::RepositoryLock::SHARED,
                                          session, "restore", options.lock));
  ASSIGN_OR_RETURN(dagvault::v1::Manifest manifest, repo.ReadManifest(manifest_id));
  ASSIGN_OR_RETURN(ChunkIndex index, LoadIndex(repo.keys(), repo.root()));

  // Which files, and where.
  std::vector<const ManifestFile*> files;
  absl::flat_hash_set<std::string> wanted(options.files.begin(), options.files.end());
  for (const auto& f : manifest.files()) {
    if (wanted.empty() || wanted.erase(f.name()) > 0) files.push_back(&f);
  }
  if (!wanted.empty()) {
    return absl::NotFoundError(
        absl::StrCat("manifest ", manifest_id, " has no file named ", *wanted.begin()));
  }
  std::vector<std::string> finals, partials;
  std::vector<ChunkTask> tasks;
  for (size_t i = 0; i < files.size(); ++i) {
    const ManifestFile& f = *files[i];
    if (f.name().empty() || f.name()[0] == '/' || f.name().find("..") != std::string::npos) {
      return absl::DataLossError(absl::StrCat("manifest ", manifest_id, ": file name \"", f.name(),
                                              "\" would escape the target folder"));
    }
    finals.push_back(JoinPath(target_dir, f.name()));
    partials.push_back(finals.back() + kPartialSuffix);
    if (!options.overwrite && PathExists(finals.back())) {
      return absl::AlreadyExistsError(absl::StrCat(
          finals.back(), " exists; restore into an empty folder, or ask to overwrite"));
    }
    RETURN_IF_ERROR(
        PlanFile(i, f, absl::StrCat("manifest ", manifest_id, " file ", f.name()), &tasks));
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

  for (size_t i = 0; i < files.size(); ++i) {
    RETURN_IF_ERROR(CreateDirectories(DirName(partials[i])));
    ASSIGN_OR_RETURN(File out, File::Open(partials[i], O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC));
    RETURN_IF_ERROR(out.Truncate(files[i]->size()));  // holes where blocks are zero
    RETURN_IF_ERROR(out.Close());
  }

  RestoreResult result;
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> chunks_read{0}, sealed_read{0};
  std::mutex mu;
  absl::Status status;
  auto fail = [&](absl::Status s) {
    std::lock_guard<std::mutex> l(mu);
    if (status.ok()) status = std::move(s);
  };
  auto failed = [&] {
    std::lock_guard<std::mutex> l(mu);
    return !status.ok();
  };
  auto restore_chunk = [&](const ChunkTask& t) -> absl::Status {
    const ManifestFile& f = *files[t.file];
    const std::string where = absl::StrCat("restore of manifest ", manifest_id, " file ", f.name());
    auto loc = index.Find(t.id);
    if (!loc) {
      return absl::DataLossError(absl::StrCat(where, ": chunk ", ChunkIdHex(t.id),
                                              " is in no index (its pack or index file is "
                                              "missing)"));
    }
    auto plaintext = ReadPackedChunk(repo.keys(), PackPath(repo.root(), *loc->pack), loc->chunk);
    if (!plaintext.ok()) return Annotate(plaintext.status(), where);
    ++chunks_read;
    sealed_read += loc->chunk.length;
    ASSIGN_OR_RETURN(File out, File::Open(partials[t.file], O_WRONLY | O_CLOEXEC));
    for (const Placement& p : t.placements) {
      if (uint64_t{p.from} + p.length > plaintext->size()) {
        return absl::DataLossError(absl::StrCat(where, ": chunk ", ChunkIdHex(t.id), " has ",
                                                plaintext->size(), " bytes; the map needs ",
                                                uint64_t{p.from} + p.length));
      }
      RETURN_IF_ERROR(out.WriteAt(p.offset, plaintext->data() + p.from, p.length));
    }
    return out.Close();
  };
  auto verify_file = [&](size_t i) -> absl::Status {
    const ManifestFile& f = *files[i];
    ASSIGN_OR_RETURN(File in, File::Open(partials[i], O_RDWR | O_CLOEXEC));
    Sha256 sha;
    std::string buf(4 << 20, '\0');
    for (uint64_t off = 0; off < f.size(); off += buf.size()) {
      const size_t n = std::min<uint64_t>(buf.size(), f.size() - off);
      if (in.IsHole(off, n)) {
        std::memset(buf.data(), 0, n);
      } else {
        RETURN_IF_ERROR(in.ReadAt(off, buf.data(), n));
      }
      sha.Update(buf.data(), n);
    }
    const Sha256Digest d = sha.Finish();
    const std::string got(reinterpret_cast<const char*>(d.data()), d.size());
    if (got != f.sha256()) {
      return absl::DataLossError(
          absl::StrCat("restore of manifest ", manifest_id, " file ", f.name(),
                       ": the restored bytes hash to ", HexDigest(got), ", not the backed-up ",
                       HexDigest(f.sha256()), "; the file was not put in place"));
    }
    return in.Sync();
  };

  const int workers = options.workers > 0
                          ? options.workers
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  auto run_parallel = [&](size_t count, const std::function<absl::Status(size_t)>& step) {
    next = 0;
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w) {
      threads.emplace_back([&] {
        for (size_t i = next++; i < count && !failed(); i = next++) {
          absl::Status s = step(i);
          if (!s.ok()) fail(std::move(s));
        }
      });
    }
    for (auto& t : threads) t.join();
  };
  run_parallel(tasks.size(), [&](size_t i) { return restore_chunk(tasks[i]); });
  RETURN_IF_ERROR(status);
  run_parallel(files.size(), verify_file);
  RETURN_IF_ERROR(status);
  for (size_t i = 0; i < files.size(); ++i) {
    RETURN_IF_ERROR(RenameDurably(partials[i], finals[i]));
    result.bytes += files[i]->size();
  }
  done = true;
  result.files = files.size();
  result.chunks_read = chunks_read;
  result.sealed_bytes_read = sealed_read;
  RETURN_IF_ERROR(lock->Release());
  return result;
}

}  // namespace dagvault::repository
