#include "repository/pack.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

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

std::string PackPath(const std::string& root, const std::string& id) {
  return JoinPath(JoinPath(JoinPath(root, "packs"), id.substr(0, 2)), id);
}

PackWriter::PackWriter(const RepositoryKeys& keys, std::string root)
    : keys_(keys), root_(std::move(root)) {}

PackWriter::PackWriter(const RepositoryKeys& keys, std::string root, std::string buffer,
                       size_t expected_size)
    : keys_(keys), root_(std::move(root)), data_(std::move(buffer)) {
  data_.clear();
  data_.reserve(expected_size);
}

std::string PackWriter::TakeBuffer() {
  data_.clear();
  chunks_.clear();
  return std::move(data_);
}

absl::Status PackWriter::Add(const ChunkId& id, std::string_view sealed,
                             uint32_t plaintext_length) {
  if (data_.empty()) data_.assign(kPackMagic, kMagicSize);
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
  if (data_.empty()) data_.assign(kPackMagic, kMagicSize);
  dagvault::v1::PackTrailer trailer;
  trailer.set_format_version(kPackFormatVersion);
  for (const auto& c : chunks_) ToEntry(c, trailer.add_entries());
  ASSIGN_OR_RETURN(std::string sealed,
                   SealBlob(keys_, TrailerBinding(data_.size()), trailer.SerializeAsString()));
  data_ += sealed;
  const uint32_t n = static_cast<uint32_t>(sealed.size());
  for (int i = 0; i < 4; ++i) data_.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  data_.append(kPackEndMagic, kMagicSize);

  PackInfo info;
  info.id = PackIdOfTail(absl::string_view(data_).substr(data_.size() - kTailSize - n));
  info.path = PackPath(root_, info.id);
  info.size = data_.size();
  info.chunks = std::move(chunks_);
  RETURN_IF_ERROR(CreateDirectories(DirName(info.path)));
  // A temporary name, fsync, rename, fsync of the folder.
  RETURN_IF_ERROR(WriteFileAtomically(info.path, data_));
  data_.clear();
  chunks_.clear();
  return info;
}

BackgroundPackWriter::BackgroundPackWriter(size_t queue_limit)
    : queue_limit_(std::max<size_t>(1, queue_limit)), thread_([this] { Run(); }) {}

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
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> l(mu_);
  if (!status_.ok()) return status_;
  return written_;
}

std::string BackgroundPackWriter::SpareBuffer() {
  std::lock_guard<std::mutex> l(mu_);
  if (spare_.empty()) return std::string();
  std::string buffer = std::move(spare_.back());
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
    // Still counted against the limit while it is written: memory stays
    // bounded by queue_limit_ + 1 packs.
    const absl::Status before = status_;
    l.unlock();
    // After a failure the rest are dropped: the backup fails anyway, and
    // its unreferenced packs would only be pruned later.
    absl::StatusOr<PackInfo> info = before.ok() ? pack->Finish() : absl::StatusOr<PackInfo>(before);
    std::string buffer = pack->TakeBuffer();
    pack.reset();
    l.lock();
    if (spare_.size() < queue_limit_) spare_.push_back(std::move(buffer));
    if (info.ok()) {
      written_.push_back(std::move(*info));
    } else if (status_.ok()) {
      status_ = info.status();
    }
    changed_.notify_all();
  }
}

absl::StatusOr<PackInfo> ReadPackIndex(const RepositoryKeys& keys, const std::string& path) {
  // Only the header, the tail and the trailer are read.
  const std::string name = absl::StrCat("pack ", path);
  ASSIGN_OR_RETURN(File f, File::OpenReadOnly(path));
  ASSIGN_OR_RETURN(uint64_t size, f.Size());
  std::string head(kMagicSize, '\0'), tail(kTailSize, '\0');
  if (size < kMagicSize + kTailSize) {
    return absl::DataLossError(absl::StrCat(name, ": not a pack (", size, " bytes)"));
  }
  ASSIGN_OR_RETURN(size_t got, f.ReadAtMost(0, head.data(), head.size()));
  if (got != head.size() || head != absl::string_view(kPackMagic, kMagicSize)) {
    return absl::DataLossError(absl::StrCat(name, ": not a pack (no pack header)"));
  }
  ASSIGN_OR_RETURN(got, f.ReadAtMost(size - kTailSize, tail.data(), tail.size()));
  if (got != tail.size() || tail.compare(4, kMagicSize, kPackEndMagic) != 0) {
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
  std::string sealed(n, '\0');
  ASSIGN_OR_RETURN(got, f.ReadAtMost(body, sealed.data(), sealed.size()));
  if (got != sealed.size()) return absl::DataLossError(absl::StrCat(name, ": short read"));
  if (PackIdOfTail(absl::StrCat(sealed, tail)) != BaseName(path)) {
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
  info.path = path;
  info.id = BaseName(path);
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

absl::StatusOr<std::map<std::string, std::string>> ListPackFiles(const std::string& root) {
  std::map<std::string, std::string> packs;
  const std::string dir = JoinPath(root, "packs");
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string name = it->path().filename().string();
    // Temporary files of a pack being written end in .tmp (file_util).
    if (name.size() == 64 && name.find('.') == std::string::npos) packs[name] = it->path().string();
  }
  if (ec) return ErrnoToStatus(ec.value(), "list", dir);
  return packs;
}

absl::Status CheckPack(const RepositoryKeys& keys, const std::string& path, bool read_data) {
  ASSIGN_OR_RETURN(PackInfo info, ReadPackIndex(keys, path));
  if (!read_data) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
  // Every chunk, from the bytes already read; every bad one is named.
  std::vector<std::string> bad;
  std::vector<char> plain;
  for (const auto& c : info.chunks) {
    if (c.offset > data.size() || c.length > data.size() - c.offset) {
      bad.push_back(absl::StrCat("chunk ", ChunkIdHex(c.id), " lies past the pack's end"));
      continue;
    }
    // Each chunk is opened where it lies: the pack's bytes are not needed again.
    auto plaintext =
        OpenChunkIn(keys, c.id, absl::MakeSpan(data.data() + c.offset, c.length), &plain);
    if (!plaintext.ok()) {
      bad.push_back(std::string(plaintext.status().message()));
    } else if (plaintext->size() != c.plaintext_length) {
      bad.push_back(absl::StrCat("chunk ", ChunkIdHex(c.id), " has ", plaintext->size(),
                                 " bytes, its index says ", c.plaintext_length));
    }
  }
  if (!bad.empty()) {
    return absl::DataLossError(absl::StrCat("pack ", path, ": ", absl::StrJoin(bad, "; ")));
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::string_view> ReadPackedChunkIn(const RepositoryKeys& keys,
                                                    const std::string& path,
                                                    const PackedChunk& chunk,
                                                    ChunkReadBuffers* buffers, bool check_id) {
  ASSIGN_OR_RETURN(File f, File::OpenReadOnly(path));
  // An index's word for where a chunk lies is checked against the pack
  // before anything is allocated for it.
  ASSIGN_OR_RETURN(uint64_t size, f.Size());
  if (chunk.offset > size || chunk.length > size - chunk.offset) {
    return absl::DataLossError(absl::StrCat("pack ", path, ": chunk ", ChunkIdHex(chunk.id),
                                            " at offset ", chunk.offset, " (", chunk.length,
                                            " bytes) lies past the pack's end (", size, " bytes)"));
  }
  if (buffers->sealed.size() < chunk.length) buffers->sealed.resize(chunk.length);
  ASSIGN_OR_RETURN(size_t got, f.ReadAtMost(chunk.offset, buffers->sealed.data(), chunk.length));
  if (got != chunk.length) {
    return absl::DataLossError(absl::StrCat("pack ", path, ": chunk ", ChunkIdHex(chunk.id),
                                            " at offset ", chunk.offset, " is cut short (", got,
                                            " of ", chunk.length, " bytes)"));
  }
  auto plaintext = OpenChunkIn(keys, chunk.id, absl::MakeSpan(buffers->sealed.data(), chunk.length),
                               &buffers->plain, check_id);
  if (!plaintext.ok()) return Annotate(plaintext.status(), absl::StrCat("pack ", path));
  if (plaintext->size() != chunk.plaintext_length) {
    return absl::DataLossError(absl::StrCat("pack ", path, ": chunk ", ChunkIdHex(chunk.id),
                                            " has ", plaintext->size(), " bytes, its index says ",
                                            chunk.plaintext_length));
  }
  return plaintext;
}

absl::StatusOr<std::string> ReadPackedChunk(const RepositoryKeys& keys, const std::string& path,
                                            const PackedChunk& chunk) {
  ChunkReadBuffers buffers;
  ASSIGN_OR_RETURN(absl::string_view plaintext, ReadPackedChunkIn(keys, path, chunk, &buffers));
  return std::string(plaintext);
}

}  // namespace dagvault::repository
