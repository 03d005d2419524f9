#include "repository/pack.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace dagvault::repository {
namespace {

constexpr size_t kMagicSize = 8;
constexpr size_t kTailSize = 4 + kMagicSize;  // trailer length, end magic

// The trailer is bound to the length of the chunk region before it: a
// trailer moved onto another pack's bytes does not open. (Each chunk is
// bound to its own id, so chunks cannot be swapped either.)
std::string TrailerBinding(uint64_t body_length) {
  return absl::StrCat("pack trailer after ", body_length, " bytes");
}

// A pack's name: the SHA-256 of its tail, from the sealed trailer to the
// end marker (docs/repository-format.md, "Packs").
std::string PackIdOfTail(absl::string_view tail) { return DigestToHex(Sha256::Of(tail)); }

}  // namespace

void ToEntry(const PackedChunk& chunk, dagvault::v1::PackTrailer::Entry* entry) {
  entry->set_id(std::string(reinterpret_cast<const char*>(chunk.id.data()), chunk.id.size()));
  entry->set_offset(chunk.offset);
  entry->set_length(chunk.length);
  entry->set_plaintext_length(chunk.plaintext_length);
}

absl::StatusOr<PackedChunk> FromEntry(const dagvault::v1::PackTrailer::Entry& entry,
                                      const std::string& where) {
  PackedChunk c;
  if (entry.id().size() != c.id.size()) {
    return absl::DataLossError(absl::StrCat(where, ": an entry with a bad chunk id"));
  }
  std::memcpy(c.id.data(), entry.id().data(), c.id.size());
  c.offset = entry.offset();
  c.length = entry.length();
  c.plaintext_length = entry.plaintext_length();
  return c;
}

std::string PackKey(const std::string& id) {
  return absl::StrCat("packs/", id.substr(0, 2), "/", id);
}

PackWriter::PackWriter(const RepositoryKeys& keys, const ObjectStore& store, PutOptions put)
    : keys_(keys), store_(store), put_(std::move(put)) {}

PackWriter::PackWriter(const RepositoryKeys& keys, const ObjectStore& store, PutOptions put,
                       AlignedBuffer buffer, size_t expected_size)
    : keys_(keys), store_(store), put_(std::move(put)), data_(std::move(buffer)) {
  data_.clear();
  data_.reserve(expected_size);
}

AlignedBuffer PackWriter::TakeBuffer() {
  data_.clear();
  chunks_.clear();
  return std::move(data_);
}

absl::Status PackWriter::Add(const ChunkId& id, std::string_view sealed,
                             uint32_t plaintext_length) {
  if (data_.empty()) data_.append(kPackMagic, kMagicSize);
  if (data_.size() + sealed.size() > (uint64_t{1} << 32) - (uint64_t{64} << 20)) {
    return absl::FailedPreconditionError(
        absl::StrCat("pack writer: chunk ", ChunkIdHex(id),
                     " would take the pack past 4 GiB; finish the pack first"));
  }
  chunks_.push_back({id, data_.size(), static_cast<uint32_t>(sealed.size()), plaintext_length});
  data_.append(sealed.data(), sealed.size());
  return absl::OkStatus();
}

absl::StatusOr<PackInfo> PackWriter::Finish() {
  if (data_.empty()) data_.append(kPackMagic, kMagicSize);
  dagvault::v1::PackTrailer trailer;
  trailer.set_format_version(kPackFormatVersion);
  for (const auto& c : chunks_) ToEntry(c, trailer.add_entries());
  ASSIGN_OR_RETURN(std::string sealed,
                   SealBlob(keys_, TrailerBinding(data_.size()), trailer.SerializeAsString()));
  data_.append(sealed);
  const uint32_t n = static_cast<uint32_t>(sealed.size());
  char length[4];
  for (int i = 0; i < 4; ++i) length[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  data_.append(length, sizeof(length));
  data_.append(kPackEndMagic, kMagicSize);

  PackInfo info;
  info.id = PackIdOfTail(data_.view().substr(data_.size() - kTailSize - n));
  info.key = PackKey(info.id);
  info.size = data_.size();
  info.chunks = std::move(chunks_);
  // Whole or not at all, durable on return. The name commits to a random
  // nonce's ciphertext: one already there is never this pack's twin.
  RETURN_IF_ERROR(store_.PutIfAbsent(info.key, data_.view(), put_));
  data_.clear();
  chunks_.clear();
  return info;
}

BackgroundPackWriter::BackgroundPackWriter(size_t queue_limit, int writers)
    : queue_limit_(std::max<size_t>(1, queue_limit)),
      writers_(static_cast<size_t>(std::max(1, writers))) {
  for (size_t i = 0; i < writers_; ++i) threads_.emplace_back([this] { Run(); });
}

BackgroundPackWriter::~BackgroundPackWriter() { (void)Close(); }

absl::Status BackgroundPackWriter::Submit(std::unique_ptr<PackWriter> pack) {
  std::unique_lock<std::mutex> l(mu_);
  changed_.wait(l, [&] { return !status_.ok() || queue_.size() < queue_limit_; });
  if (!status_.ok()) return status_;
  queue_.push_back(std::move(pack));
  changed_.notify_all();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PackInfo>> BackgroundPackWriter::Close() {
  {
    std::lock_guard<std::mutex> l(mu_);
    closing_ = true;
    changed_.notify_all();
  }
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  std::lock_guard<std::mutex> l(mu_);
  if (!status_.ok()) return status_;
  return written_;
}

AlignedBuffer BackgroundPackWriter::SpareBuffer() {
  std::lock_guard<std::mutex> l(mu_);
  if (spare_.empty()) return AlignedBuffer();
  AlignedBuffer buffer = std::move(spare_.back());
  spare_.pop_back();
  return buffer;
}

void BackgroundPackWriter::Run() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    changed_.wait(l, [&] { return closing_ || !queue_.empty(); });
    if (queue_.empty()) return;  // closing, and nothing left
    std::unique_ptr<PackWriter> pack = std::move(queue_.front());
    queue_.pop_front();
    // No longer queued while it is written: memory stays bounded by
    // queue_limit_ + the writers' packs. The queue has room now: a
    // producer waiting in Submit goes on without waiting for this write.
    changed_.notify_all();
    const absl::Status before = status_;
    l.unlock();
    // After a failure the rest are dropped: the backup fails anyway, and
    // its unreferenced packs would only be pruned later.
    absl::StatusOr<PackInfo> info = before.ok() ? pack->Finish() : absl::StatusOr<PackInfo>(before);
    AlignedBuffer buffer = pack->TakeBuffer();
    pack.reset();
    l.lock();
    if (spare_.size() < queue_limit_ + writers_) spare_.push_back(std::move(buffer));
    if (info.ok()) {
      written_.push_back(std::move(*info));
    } else if (status_.ok()) {
      status_ = info.status();
    }
    changed_.notify_all();
  }
}

namespace {

// Reads [offset, offset + length) of a pack, whatever holds it.
using ReadRange = std::function<absl::StatusOr<std::string>(uint64_t offset, uint64_t length)>;

// The trailer of a pack of `size` bytes named `id`, read through `read`.
absl::StatusOr<PackInfo> ParsePackIndex(const RepositoryKeys& keys, const std::string& name,
                                        const std::string& id, uint64_t size,
                                        const ReadRange& read) {
  if (size < kMagicSize + kTailSize) {
    return absl::DataLossError(absl::StrCat(name, ": not a pack (", size, " bytes)"));
  }
  ASSIGN_OR_RETURN(std::string head, read(0, kMagicSize));
  if (head != absl::string_view(kPackMagic, kMagicSize)) {
    return absl::DataLossError(absl::StrCat(name, ": not a pack (no pack header)"));
  }
  // The tail and, in the same read, the trailer before it when it is not
  // larger than this (one request on an object store for nearly every pack).
  constexpr uint64_t kTailRead = 256 << 10;
  const uint64_t first_read = std::min<uint64_t>(size - kMagicSize, kTailRead);
  ASSIGN_OR_RETURN(std::string end, read(size - first_read, first_read));
  if (end.size() != first_read) return absl::DataLossError(absl::StrCat(name, ": short read"));
  const absl::string_view tail = absl::string_view(end).substr(end.size() - kTailSize);
  if (tail.substr(4) != absl::string_view(kPackEndMagic, kMagicSize)) {
    return absl::DataLossError(
        absl::StrCat(name, ": no end marker: the pack is truncated or damaged at its end"));
  }
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(static_cast<uint8_t>(tail[i])) << (8 * i);
  if (n > size - kMagicSize - kTailSize) {
    return absl::DataLossError(
        absl::StrCat(name, ": its trailer claims ", n, " bytes, more than the pack holds"));
  }
  const uint64_t body = size - kTailSize - n;
  std::string sealed;
  if (n + kTailSize <= end.size()) {
    sealed = end.substr(end.size() - kTailSize - n, n);
  } else {
    ASSIGN_OR_RETURN(sealed, read(body, n));
    if (sealed.size() != n) return absl::DataLossError(absl::StrCat(name, ": short read"));
  }
  if (PackIdOfTail(absl::StrCat(sealed, tail)) != id) {
    return absl::DataLossError(
        absl::StrCat(name, ": its trailer does not hash to its name (damaged or renamed)"));
  }
  auto opened = OpenBlob(keys, TrailerBinding(body), sealed);
  if (!opened.ok()) return Annotate(opened.status(), name);
  dagvault::v1::PackTrailer trailer;
  if (!trailer.ParseFromString(*opened)) {
    return absl::DataLossError(absl::StrCat(name, ": its trailer does not parse"));
  }
  if (trailer.format_version() > kPackFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, ": pack format version ", trailer.format_version(),
                     " is newer than this dagvault (", kPackFormatVersion, "); upgrade dagvault"));
  }
  PackInfo info;
  info.key = PackKey(id);
  info.id = id;
  info.size = size;
  for (const auto& e : trailer.entries()) {
    ASSIGN_OR_RETURN(PackedChunk c, FromEntry(e, name));
    if (c.offset < kMagicSize || c.offset > body || c.length > body - c.offset) {
      return absl::DataLossError(absl::StrCat(name, ": its trailer has an entry outside the pack"));
    }
    info.chunks.push_back(c);
  }
  return info;
}

// The pack id a key names: its last component.
std::string PackIdOfKey(const std::string& key) {
  const size_t slash = key.rfind('/');
  return slash == std::string::npos ? key : key.substr(slash + 1);
}

}  // namespace

absl::StatusOr<PackInfo> ReadPackIndex(const RepositoryKeys& keys, const ObjectStore& store,
                                       const std::string& key) {
  const std::string name = absl::StrCat("pack ", store.Name(key));
  ASSIGN_OR_RETURN(ObjectInfo object, store.Head(key));
  return ParsePackIndex(keys, name, PackIdOfKey(key), object.size,
                        [&](uint64_t offset, uint64_t length) -> absl::StatusOr<std::string> {
                          auto got = store.GetRange(key, offset, length);
                          if (!got.ok()) return Annotate(got.status(), name);
                          return got;
                        });
}

absl::StatusOr<std::map<std::string, ObjectInfo>> ListPackFiles(const ObjectStore& store) {
  std::map<std::string, ObjectInfo> packs;
  ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, ListAll(store, "packs/"));
  for (auto& o : objects) {
    const std::string id = PackIdOfKey(o.key);
    // Only names a pack can have: anything else in packs/ is not ours.
    if (id.size() == 64 && id.find('.') == std::string::npos && o.key == PackKey(id)) {
      packs.emplace(id, std::move(o));
    }
  }
  return packs;
}

absl::Status CheckPack(const RepositoryKeys& keys, const ObjectStore& store, const std::string& key,
                       bool read_data) {
  if (!read_data) return ReadPackIndex(keys, store, key).status();
  const std::string name = absl::StrCat("pack ", store.Name(key));
  ASSIGN_OR_RETURN(ObjectInfo object, store.Head(key));
  // The pack lands in a buffer this thread keeps from pack to pack (check
  // reads packs on threads of its own, which end with it): a fresh string
  // per pack cost a page fault per 4 KiB of it.
  thread_local AlignedBuffer kept;
  ASSIGN_OR_RETURN(absl::Span<char> bytes, store.GetRangeInto(key, 0, object.size, &kept));
  if (bytes.size() != object.size) {
    return absl::DataLossError(
        absl::StrCat(name, ": read ", bytes.size(), " bytes of its ", object.size));
  }
  const absl::string_view data(bytes.data(), bytes.size());
  ASSIGN_OR_RETURN(PackInfo info,
                   ParsePackIndex(keys, name, PackIdOfKey(key), data.size(),
                                  [&](uint64_t offset, uint64_t length) {
                                    return absl::StatusOr<std::string>(data.substr(
                                        offset, std::min<uint64_t>(length, data.size() - offset)));
                                  }));
  // Every chunk, from the bytes already read; every bad one is named.
  std::vector<std::string> bad;
  AlignedBuffer plain;
  for (const auto& c : info.chunks) {
    if (c.offset > data.size() || c.length > data.size() - c.offset) {
      bad.push_back(absl::StrCat("chunk ", ChunkIdHex(c.id), " lies past the pack's end"));
      continue;
    }
    // Each chunk is opened where it lies: the pack's bytes are not needed again.
    auto plaintext = OpenChunkIn(keys, c.id, bytes.subspan(c.offset, c.length), &plain);
    if (!plaintext.ok()) {
      bad.push_back(std::string(plaintext.status().message()));
    } else if (plaintext->size() != c.plaintext_length) {
      bad.push_back(absl::StrCat("chunk ", ChunkIdHex(c.id), " has ", plaintext->size(),
                                 " bytes, its index says ", c.plaintext_length));
    }
  }
  if (!bad.empty()) return absl::DataLossError(absl::StrCat(name, ": ", absl::StrJoin(bad, "; ")));
  return absl::OkStatus();
}

absl::StatusOr<absl::string_view> OpenPackedChunkIn(
    const RepositoryKeys& keys, const ObjectStore& store, const std::string& key,
    const PackedChunk& chunk, absl::Span<char> sealed, ChunkReadBuffers* buffers, bool check_id) {
  if (sealed.size() != chunk.length) {
    return absl::DataLossError(absl::StrCat("pack ", store.Name(key), ": chunk ",
                                            ChunkIdHex(chunk.id), " at offset ", chunk.offset,
                                            " is cut short (", sealed.size(), " of ", chunk.length,
                                            " bytes): it lies past the pack's end"));
  }
  auto plaintext = OpenChunkIn(keys, chunk.id, sealed, &buffers->plain, check_id);
  if (!plaintext.ok()) return Annotate(plaintext.status(), absl::StrCat("pack ", store.Name(key)));
  if (plaintext->size() != chunk.plaintext_length) {
    return absl::DataLossError(absl::StrCat("pack ", store.Name(key), ": chunk ",
                                            ChunkIdHex(chunk.id), " has ", plaintext->size(),
                                            " bytes, its index says ", chunk.plaintext_length));
  }
  return plaintext;
}

absl::StatusOr<absl::string_view> ReadPackedChunkIn(const RepositoryKeys& keys,
                                                    const ObjectStore& store,
                                                    const std::string& key,
                                                    const PackedChunk& chunk,
                                                    ChunkReadBuffers* buffers, bool check_id) {
  auto sealed = store.GetRange(key, chunk.offset, chunk.length);
  if (absl::IsOutOfRange(sealed.status())) {
    return absl::DataLossError(absl::StrCat(
        "pack ", store.Name(key), ": chunk ", ChunkIdHex(chunk.id), " at offset ", chunk.offset,
        " (", chunk.length, " bytes) lies past the pack's end: ", sealed.status().message()));
  }
  if (!sealed.ok()) return sealed.status();
  buffers->sealed = *std::move(sealed);
  return OpenPackedChunkIn(keys, store, key, chunk, absl::MakeSpan(buffers->sealed), buffers,
                           check_id);
}

absl::StatusOr<std::string> ReadPackedChunk(const RepositoryKeys& keys, const ObjectStore& store,
                                            const std::string& key, const PackedChunk& chunk) {
  ChunkReadBuffers buffers;
  ASSIGN_OR_RETURN(absl::string_view plaintext,
                   ReadPackedChunkIn(keys, store, key, chunk, &buffers));
  return std::string(plaintext);
}

}  // namespace dagvault::repository
