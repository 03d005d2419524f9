#include "repository/check.h"

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/parallel.h"
#include "common/status_macros.h"
#include "repository/block_map.h"
#include "repository/index.h"
#include "repository/pack.h"

namespace dagvault::repository {
absl::StatusOr<CheckReport> Check(const Repository& repo, const CheckOptions& options) {
  ASSIGN_OR_RETURN(std::string session, Repository::NewSessionId());
  ASSIGN_OR_RETURN(auto lock,
                   AcquireLock(repo.shared_store(), dagvault::v1::RepositoryLock::SHARED, session,
                               "check", LockOptionsFor(repo.config(), options.lock)));
  CheckReport report;

  // Index files, one by one: a bad one is reported, the others still count.
  ChunkIndex index;
  std::map<std::string, std::string> indexed;  // pack id → the index file listing it
  std::map<std::string, std::vector<PackedChunk>> listed;
  ASSIGN_OR_RETURN(std::vector<std::string> index_files, ListIndexFiles(repo.store()));
  for (const auto& key : index_files) {
    const std::string path = repo.store().Name(key);
    ++report.index_files;
    auto packs = ReadIndexFile(repo.keys(), repo.store(), key);
    if (!packs.ok()) {
      report.errors.push_back(std::string(packs.status().message()));
      continue;
    }
    for (const auto& p : *packs) {
      index.AddPack(p);
      indexed.emplace(p.id, path);
      listed.emplace(p.id, p.chunks);
    }
  }
  index.Compact();

  // Packs: listed ones exist, their trailers agree with the index, and
  // with read_data their bytes are whole; unlisted ones are leftovers.
  ASSIGN_OR_RETURN(auto on_disk, ListPackFiles(repo.store()));
  std::set<std::string> bad_packs;
  std::vector<std::pair<std::string, std::string>> to_read;  // pack id, key
  for (const auto& [id, index_file] : indexed) {
    if (!on_disk.count(id)) {
      report.errors.push_back(
          absl::StrCat("pack ", id, " (listed in index file ", index_file, ") is missing"));
      bad_packs.insert(id);
    }
  }
  for (const auto& [id, object] : on_disk) {
    const std::string path = repo.store().Name(object.key);
    if (!indexed.count(id)) {
      report.warnings.push_back(
          absl::StrCat("pack ", path,
                       " is in no index (left by a backup that did not finish, or by a "
                       "prune; the next prune removes it)"));
      continue;
    }
    ++report.packs;
    auto trailer = ReadPackIndex(repo.keys(), repo.store(), object.key);
    if (!trailer.ok()) {
      report.errors.push_back(std::string(trailer.status().message()));
      bad_packs.insert(id);
      continue;
    }
    report.chunks += trailer->chunks.size();
    const auto& expected = listed[id];
    bool agrees = expected.size() == trailer->chunks.size();
    for (size_t i = 0; agrees && i < expected.size(); ++i) {
      agrees = expected[i].id == trailer->chunks[i].id &&
               expected[i].offset == trailer->chunks[i].offset &&
               expected[i].length == trailer->chunks[i].length;
    }
    if (!agrees) {
      report.errors.push_back(absl::StrCat("pack ", path, ": its trailer and index file ",
                                           indexed[id], " disagree about its chunks"));
      bad_packs.insert(id);
      continue;
    }
    if (options.read_data) {
      report.bytes_read += trailer->size;
      to_read.emplace_back(id, object.key);
    }
  }
  // Reading every chunk is the long part: packs are read on one thread
  // per core, and their problems reported in pack order.
  std::vector<absl::Status> read(to_read.size());
  ParallelFor(to_read.size(), std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16),
              [&](size_t i) {
                read[i] =
                    CheckPack(repo.keys(), repo.store(), to_read[i].second, /*read_data=*/true);
              });
  for (size_t i = 0; i < to_read.size(); ++i) {
    if (read[i].ok()) continue;
    report.errors.push_back(std::string(read[i].message()));
    bad_packs.insert(to_read[i].first);
  }

  // Manifests: each opens, its maps are whole, and every chunk it needs is
  // indexed in a pack that checked out.
  ASSIGN_OR_RETURN(std::vector<std::string> manifests, repo.ListManifests());
  for (const auto& id : manifests) {
    ++report.manifests;
    auto m = repo.ReadManifest(id);
    if (!m.ok()) {
      report.errors.push_back(std::string(m.status().message()));
      continue;
    }
    for (const auto& f : m->files()) {
      const std::string where = absl::StrCat("manifest ", id, " file ", f.name());
      if (f.has_block_map()) {
        if (absl::Status s = ValidateBlockMap(f, where); !s.ok()) {
          report.errors.push_back(std::string(s.message()));
          continue;
        }
      }
      int missing = 0, damaged = 0;
      std::string example;
      ForEachChunkId(f, [&](const ChunkId& c) {
        auto loc = index.Find(c);
        if (!loc) {
          if (missing++ == 0) example = absl::StrCat("chunk ", ChunkIdHex(c), " is in no index");
        } else if (bad_packs.count(*loc->pack)) {
          if (missing + damaged++ == 0) {
            example = absl::StrCat("chunk ", ChunkIdHex(c), " is in damaged pack ", *loc->pack);
          }
        }
      });
      if (missing + damaged > 0) {
        // The index file its own backup wrote names what was lost, when
        // that is what is gone.
        const std::string own_key = IndexFileKey(m->session());
        const std::string own_index = repo.store().Name(own_key);
        const bool lost_index =
            missing > 0 && !m->session().empty() &&
            !std::binary_search(index_files.begin(), index_files.end(), own_key);
        report.errors.push_back(absl::StrCat(
            where, ": ", missing, " chunks missing and ", damaged, " in damaged packs (e.g. ",
            example, ")",
            lost_index ? absl::StrCat("; index file ", own_index, " of its backup is missing") : "",
            "; a restore of this file would fail"));
      }
    }
  }
  RETURN_IF_ERROR(lock->Release());
  return report;
}

absl::StatusOr<RepositoryStats> Stats(const Repository& repo) {
  RepositoryStats stats;
  ASSIGN_OR_RETURN(std::vector<std::string> index_files, ListIndexFiles(repo.store()));
  absl::flat_hash_map<ChunkId, bool> seen;
  std::set<std::string> packs;
  for (const auto& key : index_files) {
    ASSIGN_OR_RETURN(std::vector<PackInfo> infos, ReadIndexFile(repo.keys(), repo.store(), key));
    for (const auto& p : infos) {
      if (!packs.insert(p.id).second) continue;
      for (const auto& c : p.chunks) {
        if (!seen.emplace(c.id, true).second) continue;
        ++stats.chunks;
        stats.chunk_plaintext_bytes += c.plaintext_length;
        stats.chunk_sealed_bytes += c.length;
      }
    }
  }
  ASSIGN_OR_RETURN(auto on_disk, ListPackFiles(repo.store()));
  for (const auto& [id, object] : on_disk) {
    ++stats.packs;
    stats.pack_bytes += object.size;
  }
  ASSIGN_OR_RETURN(std::vector<std::string> manifests, repo.ListManifests());
  for (const auto& id : manifests) {
    ASSIGN_OR_RETURN(dagvault::v1::Manifest m, repo.ReadManifest(id));
    ++stats.manifests;
    stats.files += m.files_size();
    stats.logical_bytes += m.logical_bytes();
  }
  return stats;
}

}  // namespace dagvault::repository
