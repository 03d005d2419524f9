#include "repository/index.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace dagvault::repository {
namespace {

constexpr uint32_t kIndexFormatVersion = 1;
constexpr char kIndexSuffix[] = ".idx";

std::string IndexBinding(const std::string& session) { return absl::StrCat("index ", session); }

}  // namespace

void ChunkIndex::AddPack(const PackInfo& pack, const std::string& index_file) {
  const uint32_t number = static_cast<uint32_t>(packs_.size());
  packs_.push_back(pack.id);
  if (index_files_.empty() || index_files_.back() != index_file) {
    index_files_.push_back(index_file);
  }
  pack_files_.push_back(static_cast<uint32_t>(index_files_.size() - 1));
  for (const auto& c : pack.chunks) {
    // The first pack that holds a chunk keeps it (a duplicate written by a
    // concurrent session is equally good).
    if (FindLocation(c.id) != nullptr) continue;
    recent_.emplace(
        c.id, Location{number, static_cast<uint32_t>(c.offset), c.length, c.plaintext_length});
  }
  if (recent_.size() > std::max<size_t>(1 << 16, sorted_.size() / 8)) Compact();
}

void ChunkIndex::Compact() {
  if (recent_.empty()) return;
  std::vector<Entry> added;
  added.reserve(recent_.size());
  for (const auto& [id, loc] : recent_) added.push_back({id, loc});
  recent_ = {};  // gives its memory back
  auto by_id = [](const Entry& a, const Entry& b) { return a.id < b.id; };
  std::sort(added.begin(), added.end(), by_id);
  std::vector<Entry> merged;
  merged.reserve(sorted_.size() + added.size());
  std::merge(sorted_.begin(), sorted_.end(), added.begin(), added.end(), std::back_inserter(merged),
             by_id);
  sorted_ = std::move(merged);
}

const ChunkIndex::Location* ChunkIndex::FindLocation(const ChunkId& id) const {
  auto it = std::lower_bound(sorted_.begin(), sorted_.end(), id,
                             [](const Entry& e, const ChunkId& key) { return e.id < key; });
  if (it != sorted_.end() && it->id == id) return &it->loc;
  auto r = recent_.find(id);
  return r == recent_.end() ? nullptr : &r->second;
}

std::optional<ChunkLocation> ChunkIndex::Find(const ChunkId& id) const {
  const Location* loc = FindLocation(id);
  if (loc == nullptr) return std::nullopt;
  ChunkLocation out;
  out.pack = &packs_[loc->pack];
  out.index_file = &index_files_[pack_files_[loc->pack]];
  out.chunk = {id, loc->offset, loc->length, loc->plaintext_length};
  return out;
}

size_t ChunkIndex::MemoryBytes() const {
  // absl's flat_hash_map: one slot and one control byte per bucket.
  return sorted_.capacity() * sizeof(Entry) +
         recent_.bucket_count() * (sizeof(std::pair<const ChunkId, Location>) + 1);
}

absl::Status WriteIndexFile(const RepositoryKeys& keys, const ObjectStore& store,
                            const std::string& session, const std::vector<PackInfo>& packs,
                            const PutOptions& put) {
  dagvault::v1::IndexFile file;
  file.set_format_version(kIndexFormatVersion);
  file.set_session(session);
  for (const auto& p : packs) {
    auto* pack = file.add_packs();
    pack->set_id(p.id);
    for (const auto& c : p.chunks) ToEntry(c, pack->add_entries());
  }
  ASSIGN_OR_RETURN(std::string sealed,
                   SealBlob(keys, IndexBinding(session), file.SerializeAsString()));
  return store.PutIfAbsent(IndexFileKey(session), sealed, put);
}

std::string IndexFileKey(const std::string& session) {
  return absl::StrCat("index/", session, kIndexSuffix);
}

absl::StatusOr<std::vector<std::string>> ListIndexFiles(const ObjectStore& store) {
  std::vector<std::string> files;
  ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, ListAll(store, "index/"));
  for (const auto& o : objects) {
    // Index files sit directly in index/.
    if (absl::EndsWith(o.key, kIndexSuffix) && o.key.find('/', 6) == std::string::npos) {
      files.push_back(o.key);
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<std::vector<PackInfo>> ReadIndexFile(const RepositoryKeys& keys,
                                                    const ObjectStore& store,
                                                    const std::string& key) {
  const std::string name = absl::StrCat("index file ", store.Name(key));
  const std::string base = BaseName(key);
  const std::string session = base.substr(0, base.size() - std::strlen(kIndexSuffix));
  ASSIGN_OR_RETURN(std::string sealed, store.Get(key));
  auto opened = OpenBlob(keys, IndexBinding(session), sealed);
  if (!opened.ok()) return Annotate(opened.status(), name);
  dagvault::v1::IndexFile file;
  if (!file.ParseFromString(*opened)) {
    return absl::DataLossError(absl::StrCat(name, ": does not parse"));
  }
  if (file.format_version() > kIndexFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, ": format version ", file.format_version(),
                     " is newer than this dagvault (", kIndexFormatVersion, "); upgrade"));
  }
  std::vector<PackInfo> packs;
  for (const auto& p : file.packs()) {
    PackInfo pack;
    pack.id = p.id();
    pack.key = PackKey(p.id());
    for (const auto& e : p.entries()) {
      ASSIGN_OR_RETURN(PackedChunk c, FromEntry(e, name));
      pack.chunks.push_back(c);
    }
    packs.push_back(std::move(pack));
  }
  return packs;
}

absl::StatusOr<ChunkIndex> LoadIndex(const RepositoryKeys& keys, const ObjectStore& store) {
  ChunkIndex index;
  ASSIGN_OR_RETURN(std::vector<std::string> files, ListIndexFiles(store));
  for (const std::string& key : files) {
    ASSIGN_OR_RETURN(std::vector<PackInfo> packs, ReadIndexFile(keys, store, key));
    for (const auto& pack : packs) index.AddPack(pack, key);
  }
  index.Compact();
  return index;
}

}  // namespace dagvault::repository
