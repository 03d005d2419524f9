#include "repository/prune.h"

#include <map>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "repository/block_map.h"
#include "repository/index.h"
#include "repository/pack.h"

namespace dagvault::repository {
namespace {

// Before a destructive step: the prune's lock is still its own, no
// manifest appeared that it did not plan for (a writer whose lock it broke
// committed after all), and no live lock appeared beside its own.
absl::Status StillSafe(const Repository& repo, RepositoryLockHandle& lock,
                       const std::set<std::string>& planned, const PruneOptions& options,
                       const LockOptions& lock_options, absl::string_view step) {
  if (options.before_step) options.before_step(step);
  auto stop = [&](const absl::Status& s) {
    return Annotate(s, absl::StrCat("prune stopped before ", step,
                                    " (what is left over goes at the next prune)"));
  };
  RETURN_IF_ERROR(stop(lock.CheckStillHeld()));
  ASSIGN_OR_RETURN(std::vector<std::string> now, repo.ListManifests());
  for (const auto& id : now) {
    if (planned.count(id) == 0) {
      return stop(
          absl::AbortedError(absl::StrCat("manifest ", id,
                                          " appeared while prune ran; its writer's lock was broken "
                                          "as stale but it went on")));
    }
  }
  auto locks = ListLocks(repo.store(), lock.key());
  if (!locks.ok()) return stop(locks.status());
  for (const auto& [key, other] : *locks) {
    ASSIGN_OR_RETURN(const absl::Time storage_now, lock.StorageNow());
    if (StaleReason(repo.store(), key, other, lock_options, storage_now).empty()) {
      return stop(absl::AbortedError(
          absl::StrCat("a live lock appeared beside prune's: ", repo.store().Name(key), " (",
                       other.purpose(), " on ", other.host(), ", pid ", other.pid(), ")")));
    }
  }
  return absl::OkStatus();
}

constexpr char kMarksPrefix[] = "prune/";
constexpr char kMarksSuffix[] = ".marks";

std::string MarksBinding(absl::string_view key) { return absl::StrCat("prune marks ", key); }

// The marks earlier prunes left: every pack id marked, and which of the
// marks are old enough to act on (their objects' keys, to remove once
// acted on). A mark that does not open only delays removals: it is
// skipped with a warning.
struct Marks {
  std::set<std::string> marked;
  std::set<std::string> ripe;  // pack ids in marks older than the grace period
  std::vector<std::string> ripe_keys;
};

absl::StatusOr<Marks> ReadMarks(const Repository& repo, absl::Time storage_now,
                                absl::Duration grace) {
  Marks marks;
  ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, ListAll(repo.store(), kMarksPrefix));
  for (const auto& o : objects) {
    if (!absl::EndsWith(o.key, kMarksSuffix)) continue;
    auto sealed = repo.store().Get(o.key);
    auto opened = sealed.ok() ? OpenBlob(repo.keys(), MarksBinding(o.key), *sealed)
                              : absl::StatusOr<std::string>(sealed.status());
    if (!opened.ok()) {
      logging::Get("repository.prune")
          ->warn("prune marks {} skipped: {}", repo.store().Name(o.key), opened.status());
      continue;
    }
    const bool ripe = grace <= absl::ZeroDuration() || storage_now - o.modified >= grace;
    for (absl::string_view id : absl::StrSplit(*opened, '\n', absl::SkipEmpty())) {
      marks.marked.emplace(id);
      if (ripe) marks.ripe.emplace(id);
    }
    if (ripe) marks.ripe_keys.push_back(o.key);
  }
  return marks;
}

absl::Status WriteMarks(const Repository& repo, const std::string& session,
                        const std::set<std::string>& ids) {
  const std::string key = absl::StrCat(kMarksPrefix, session, kMarksSuffix);
  ASSIGN_OR_RETURN(std::string sealed,
                   SealBlob(repo.keys(), MarksBinding(key), absl::StrJoin(ids, "\n")));
  return repo.store().PutIfAbsent(key, sealed);
}

}  // namespace

absl::StatusOr<PruneReport> Prune(const Repository& repo, const PruneOptions& options) {
  auto log = logging::Get("repository.prune");
  ASSIGN_OR_RETURN(std::string session, Repository::NewSessionId());
  const LockOptions lock_options = LockOptionsFor(repo.config(), options.lock);
  ASSIGN_OR_RETURN(
      auto lock, AcquireLock(repo.shared_store(), dagvault::v1::RepositoryLock::EXCLUSIVE, session,
                             "prune", lock_options));
  PruneReport report;
  const absl::Duration grace = options.pack_grace.value_or(2 * lock_options.StaleAfter());
  // Anything written after this is young: it stays. Measured on the
  // storage's clock (pack and lock files alike), so that a prune whose
  // wall clock jumped ahead does not take fresh packs for old ones.
  ASSIGN_OR_RETURN(const absl::Time storage_now, lock->StorageNow());
  const absl::Time young_after =
      grace <= absl::ZeroDuration() ? absl::InfiniteFuture() : storage_now - grace;

  // What stays: every kept manifest must open, or nothing is done.
  ASSIGN_OR_RETURN(std::vector<std::string> all, repo.ListManifests());
  const std::set<std::string> present(all.begin(), all.end());
  std::vector<std::string> keep_manifests = options.keep_manifests;
  if (!options.remove_manifests.empty()) {
    // Decided under the lock: whatever is here now and not named stays.
    const std::set<std::string> remove(options.remove_manifests.begin(),
                                       options.remove_manifests.end());
    keep_manifests.clear();
    for (const auto& id : all) {
      if (remove.count(id) == 0) keep_manifests.push_back(id);
    }
  }
  absl::flat_hash_set<ChunkId> live;
  for (const auto& id : keep_manifests) {
    if (!present.count(id)) {
      return absl::NotFoundError(absl::StrCat("prune: manifest ", id, " is not in repository ",
                                              repo.root(), "; nothing was removed"));
    }
    auto m = repo.ReadManifest(id);
    if (!m.ok()) {
      return Annotate(m.status(), "prune: a kept manifest does not open; nothing was removed");
    }
    for (const auto& f : m->files()) ForEachChunkId(f, [&](const ChunkId& c) { live.insert(c); });
  }
  // And every index file, or nothing is done: a damaged one could hide
  // where live chunks are.
  ASSIGN_OR_RETURN(std::vector<std::string> index_files, ListIndexFiles(repo.store()));
  std::map<std::string, PackInfo> packs;  // by id; a pack listed twice counts once
  for (const auto& key : index_files) {
    auto infos = ReadIndexFile(repo.keys(), repo.store(), key);
    if (!infos.ok()) {
      return Annotate(infos.status(), "prune: run check; nothing was removed");
    }
    for (auto& p : *infos) packs.emplace(p.id, std::move(p));
  }
  ASSIGN_OR_RETURN(auto on_disk, ListPackFiles(repo.store()));
  for (const auto& [id, object] : on_disk) report.bytes_before += object.size;

  for (const auto& [id, pack] : packs) {
    if (!on_disk.count(id)) {
      return absl::DataLossError(
          absl::StrCat("prune: pack ", id,
                       " is listed in an index but missing; run check; nothing was removed"));
    }
  }

  // (1) The manifests not kept.
  std::set<std::string> keep(keep_manifests.begin(), keep_manifests.end());
  RETURN_IF_ERROR(StillSafe(repo, *lock, present, options, lock_options, "removing manifests"));
  auto retained = [&](const absl::Status& s) {
    std::optional<absl::Time> until = RetainedUntil(s);
    if (until) report.retained_until = std::max(report.retained_until, *until);
    return until.has_value();
  };
  for (const auto& id : all) {
    if (keep.count(id)) continue;
    absl::Status removed = repo.RemoveManifest(id);
    if (retained(removed)) {
      // Still immutable: it stays, and so does everything it needs.
      report.manifests_retained.push_back(id);
      keep.insert(id);
      ASSIGN_OR_RETURN(dagvault::v1::Manifest m, repo.ReadManifest(id));
      for (const auto& f : m.files()) ForEachChunkId(f, [&](const ChunkId& c) { live.insert(c); });
      continue;
    }
    RETURN_IF_ERROR(removed);
    ++report.manifests_removed;
    DAGVAULT_CRASH_POINT("prune.manifest_removed");
  }
  // A pack that may not be removed yet is not repacked either (its copy
  // would only double it); it stays as it is, indexed.
  const absl::Time now = absl::Now();
  auto under_retention = [&](const PackInfo& pack) {
    // Only a repository with Object Lock writes retained packs (a delete
    // still refuses any other, and it is kept then).
    if (repo.config().object_lock_days() == 0) return false;
    auto head = repo.store().Head(pack.key);
    if (!head.ok() || !head->retain_until || *head->retain_until <= now) return false;
    report.retained_until = std::max(report.retained_until, *head->retain_until);
    ++report.packs_retained;
    return true;
  };

  // (2) Sort the packs, copy the live chunks of the mostly dead ones, and
  // write one index file for everything that stays.
  std::vector<PackInfo> staying;
  std::vector<std::string> going;
  absl::flat_hash_set<ChunkId> placed;  // a chunk found in two packs stays once
  PackWriter writer(repo.keys(), repo.store());
  auto flush = [&]() -> absl::Status {
    if (writer.chunk_count() == 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(PackInfo info, writer.Finish());
    staying.push_back(std::move(info));
    ++report.packs_written;
    DAGVAULT_CRASH_POINT("prune.pack_written");
    return absl::OkStatus();
  };
  for (const auto& [id, pack] : packs) {
    if (on_disk[id].modified >= young_after) {
      // Young: it stays as it is, indexed, whatever refers to it.
      for (const auto& c : pack.chunks) {
        if (live.contains(c.id)) placed.insert(c.id);
      }
      staying.push_back(pack);
      continue;
    }
    uint64_t live_bytes = 0, all_bytes = 0;
    std::vector<const PackedChunk*> keep_chunks;
    for (const auto& c : pack.chunks) {
      all_bytes += c.length;
      if (live.contains(c.id) && !placed.contains(c.id)) {
        live_bytes += c.length;
        keep_chunks.push_back(&c);
      }
    }
    const bool stays_anyway =
        !keep_chunks.empty() &&
        static_cast<double>(live_bytes) >= options.repack_below * static_cast<double>(all_bytes);
    if (!stays_anyway && under_retention(pack)) {
      for (const auto* c : keep_chunks) placed.insert(c->id);
      staying.push_back(pack);
      continue;
    }
    if (keep_chunks.empty()) {
      going.push_back(id);
      report.chunks_removed += pack.chunks.size();
      continue;
    }
    for (const auto* c : keep_chunks) placed.insert(c->id);
    if (static_cast<double>(live_bytes) >= options.repack_below * static_cast<double>(all_bytes)) {
      staying.push_back(pack);
      continue;
    }
    // Repack: each live chunk authenticates before it is copied, so damage
    // is not carried into a new pack under a good name.
    ASSIGN_OR_RETURN(std::string data, repo.store().Get(pack.key));
    for (const auto* c : keep_chunks) {
      if (c->offset > data.size() || c->length > data.size() - c->offset) {
        return absl::DataLossError(absl::StrCat("prune: repacking pack ", id, ": chunk ",
                                                ChunkIdHex(c->id), " lies past its end"));
      }
      const std::string_view sealed = std::string_view(data).substr(c->offset, c->length);
      auto plain = OpenChunk(repo.keys(), c->id, absl::string_view(sealed.data(), sealed.size()));
      if (!plain.ok()) return Annotate(plain.status(), absl::StrCat("prune: repacking pack ", id));
      RETURN_IF_ERROR(writer.Add(c->id, sealed, c->plaintext_length));
      if (writer.size() >= repo.config().pack_target_bytes()) RETURN_IF_ERROR(flush());
    }
    going.push_back(id);
    ++report.packs_repacked;
    report.chunks_removed += pack.chunks.size() - keep_chunks.size();
  }
  RETURN_IF_ERROR(flush());
  const std::string index_name = absl::StrCat("prune-", session);
  RETURN_IF_ERROR(WriteIndexFile(repo.keys(), repo.store(), index_name, staying));
  DAGVAULT_CRASH_POINT("prune.index_written");

  // (3) The old index files: the new one lists everything that stays.
  RETURN_IF_ERROR(StillSafe(repo, *lock, keep, options, lock_options, "removing index files"));
  for (const auto& key : index_files) {
    absl::Status removed = repo.store().Delete(key);
    if (retained(removed)) {
      ++report.index_files_retained;
      continue;
    }
    RETURN_IF_ERROR(removed);
    DAGVAULT_CRASH_POINT("prune.index_removed");
  }
  // (4) The packs nothing needs: dead, repacked, or in no index at all.
  std::set<std::string> staying_ids;
  for (const auto& p : staying) staying_ids.insert(p.id);
  RETURN_IF_ERROR(StillSafe(repo, *lock, keep, options, lock_options, "removing packs"));
  std::vector<const ObjectInfo*> unreferenced;
  for (const auto& [id, object] : on_disk) {
    if (staying_ids.count(id)) continue;
    if (object.modified >= young_after) {
      // In no index: a writer's that has not written its index yet.
      ++report.packs_kept_young;
      continue;
    }
    unreferenced.push_back(&object);
  }
  std::vector<std::string> consumed_marks;
  if (repo.store().two_phase_prune()) {
    ASSIGN_OR_RETURN(Marks marks, ReadMarks(repo, storage_now, grace));
    std::set<std::string> to_mark;
    for (const ObjectInfo* o : unreferenced) {
      const std::string id = BaseName(o->key);
      if (!marks.marked.count(id)) to_mark.insert(id);
    }
    if (!to_mark.empty()) {
      RETURN_IF_ERROR(WriteMarks(repo, session, to_mark));
      report.packs_marked = to_mark.size();
      // With no grace period the new mark is ripe at once.
      if (grace <= absl::ZeroDuration()) {
        marks.ripe.insert(to_mark.begin(), to_mark.end());
        marks.ripe_keys.push_back(absl::StrCat(kMarksPrefix, session, kMarksSuffix));
      }
    }
    std::vector<const ObjectInfo*> ripe;
    for (const ObjectInfo* o : unreferenced) {
      if (marks.ripe.count(BaseName(o->key))) {
        ripe.push_back(o);
      } else {
        ++report.packs_waiting;
      }
    }
    unreferenced = std::move(ripe);
    consumed_marks = std::move(marks.ripe_keys);
  }
  for (const ObjectInfo* o : unreferenced) {
    const ObjectInfo& object = *o;
    absl::Status removed = repo.store().Delete(object.key);
    if (retained(removed)) {
      ++report.packs_retained;
      continue;
    }
    RETURN_IF_ERROR(removed);
    ++report.packs_removed;
    DAGVAULT_CRASH_POINT("prune.pack_removed");
  }
  // A ripe mark is spent: each of its packs is removed now or is
  // referenced again (and would be marked afresh when it is not).
  for (const auto& key : consumed_marks) {
    // One a bucket's default retention holds stays; it is only read again.
    if (absl::Status removed = repo.store().Delete(key); !removed.ok() && !retained(removed)) {
      return removed;
    }
  }
  // Temporary files a crashed writer left, once older than the grace
  // period: a younger one may be a live writer's.
  if (auto removed = repo.store().RemoveIncomplete(young_after); !removed.ok()) {
    log->warn("prune of {}: leftovers of interrupted writes not removed: {}", repo.root(),
              removed.status().ToString());
  }
  ASSIGN_OR_RETURN(auto after, ListPackFiles(repo.store()));
  for (const auto& [id, object] : after) report.bytes_after += object.size;
  log->info(
      "pruned {}: {} manifests and {} packs removed, {} repacked, {} unreferenced packs younger "
      "than {} kept, {} -> {} bytes",
      repo.root(), report.manifests_removed, report.packs_removed, report.packs_repacked,
      report.packs_kept_young, absl::FormatDuration(grace), report.bytes_before,
      report.bytes_after);
  if (report.packs_marked + report.packs_waiting > 0) {
    log->info(
        "prune of {}: {} unreferenced packs marked now and {} marked earlier wait for the "
        "grace period ({}); a prune after it removes those still unreferenced",
        repo.root(), report.packs_marked, report.packs_waiting, absl::FormatDuration(grace));
  }
  if (!report.manifests_retained.empty() ||
      report.packs_retained + report.index_files_retained > 0) {
    log->info(
        "prune of {}: {} manifests, {} packs and {} index files are under retention (Object "
        "Lock) until {} at the latest: kept now, removed by a prune after that",
        repo.root(), report.manifests_retained.size(), report.packs_retained,
        report.index_files_retained, FormatUtc(report.retained_until));
  }
  RETURN_IF_ERROR(lock->Release());
  return report;
}

}  // namespace dagvault::repository
