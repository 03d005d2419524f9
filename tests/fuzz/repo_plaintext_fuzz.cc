// The repository's sealed objects after authentication: the bytes are
// sealed with the repository's key as a writer would, written where the
// readers look, and read back by the real readers (Repository::ReadManifest,
// ReadPackIndex and CheckPack, ReadIndexFile), then handled as check and
// restore handle them (ValidateBlockMap, IsSafeFileName, ForEachChunkId,
// ReadPackedChunkIn).
//
// Input: a mode byte (0 manifest, 1 pack trailer, 2 index file); for a
// trailer two bytes of chunk-region length; then the plaintext (a
// serialized Manifest, PackTrailer or IndexFile).
#include <string>

#include "absl/strings/str_cat.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "repository/block_map.h"
#include "repository/filesystem_object_store.h"
#include "repository/index.h"
#include "repository/pack.h"
#include "repository/repository.h"
#include "repository/restore.h"
#include "tests/fuzz/fuzz_entry.h"
#include "tests/fuzz/fuzz_files.h"

namespace dagvault::fuzz {
namespace {

using namespace dagvault::repository;
namespace v1 = dagvault::v1;

const Repository& Repo() {
  static const Repository* repo = [] {
    Secret secret;
    secret.bytes = "fuzz passphrase";
    secret.source = "fuzz";
    InitOptions options;
    options.scrypt.n = 16;
    auto r = Repository::Init(JoinPath(FuzzTempDir(), "repo"), secret, options);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", std::string(r.status().message()).c_str());
      std::abort();
    }
    return new Repository(*std::move(r));
  }();
  return *repo;
}

// What restore and check do with each file of a manifest they read.
void UseManifest(const v1::Manifest& m) {
  for (const auto& f : m.files()) {
    (void)IsSafeFileName(f.name());
    size_t ids = 0;
    ForEachChunkId(f, [&](const ChunkId&) { ++ids; });
    if (!f.has_block_map()) continue;
    if (!ValidateBlockMap(f, "fuzz").ok()) continue;
    const auto& map = f.block_map();
    const uint32_t bs = map.block_size();
    const uint64_t count = BlockCount(f.size(), bs);
    // The map covers the whole file, and every reference is in range.
    FUZZ_CHECK(count * bs >= f.size());
    const uint64_t chunks = map.chunk_ids().size() / 32;
    for (uint64_t i = 0; i < count; ++i) {
      const BlockRecord r = BlockRecordAt(map.blocks(), i);
      if (r.ref == kZeroBlockRef) continue;
      FUZZ_CHECK(r.chunk() < chunks);
      FUZZ_CHECK(uint64_t{r.slot()} * bs + bs <= uint64_t{BlocksPerChunk(bs)} * bs);
    }
  }
}

void FuzzManifest(const std::string& plaintext) {
  v1::Manifest parsed;
  std::string id = "20250101T000000.000000Z-fuzz0000";
  const bool parses = parsed.ParseFromString(plaintext);
  if (parses && !parsed.id().empty() && parsed.id().size() <= 64 &&
      parsed.id().find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789-.") == std::string::npos &&
      parsed.id().find("..") == std::string::npos && parsed.id()[0] != '.') {
    id = parsed.id();
  }
  const Repository& repo = Repo();
  auto sealed = SealBlob(repo.keys(), absl::StrCat("manifest ", id), plaintext);
  FUZZ_CHECK(sealed.ok());
  const std::string manifest_path = repo.store().Name(Repository::ManifestKey(id));
  // A new repository has no manifests/ folder until its first manifest.
  (void)CreateDirectories(DirName(manifest_path));
  WriteScratchFile(manifest_path, *sealed);
  auto m = repo.ReadManifest(id);
  (void)RemoveDurably(manifest_path);
  // What a writer seals, a reader opens.
  if (parses && parsed.id() == id && parsed.format_version() <= kRepositoryFormatVersion) {
    FUZZ_CHECK(m.ok());
  }
  if (m.ok()) UseManifest(*m);
}

// The scratch folder as an object store: a key is a file name in it.
const FilesystemObjectStore& Scratch() {
  static const auto* store = new FilesystemObjectStore(FuzzTempDir());
  return *store;
}

// The key of a small pack-like object in Scratch().
std::string SmallPack() {
  static const std::string* path = [] {
    WriteScratchFile(JoinPath(FuzzTempDir(), "small.pack"),
                     absl::StrCat(kPackMagic, std::string(4096, 'x')));
    return new std::string("small.pack");
  }();
  return *path;
}

void FuzzTrailer(uint32_t body_length, const std::string& plaintext) {
  const Repository& repo = Repo();
  const uint64_t body = 8 + body_length;
  auto sealed =
      SealBlob(repo.keys(), absl::StrCat("pack trailer after ", body, " bytes"), plaintext);
  FUZZ_CHECK(sealed.ok());
  std::string tail = *sealed;
  const uint32_t n = static_cast<uint32_t>(sealed->size());
  for (int i = 0; i < 4; ++i) tail.push_back(static_cast<char>(n >> (8 * i)));
  tail.append(kPackEndMagic, 8);
  const std::string key = DigestToHex(Sha256::Of(tail));
  const std::string path = Scratch().Name(key);
  WriteScratchFile(path, absl::StrCat(kPackMagic, std::string(body_length, '\0'), tail));
  auto info = ReadPackIndex(repo.keys(), Scratch(), key);
  v1::PackTrailer parsed;
  if (parsed.ParseFromString(plaintext) && parsed.format_version() <= kPackFormatVersion) {
    bool entries_ok = true;
    for (const auto& e : parsed.entries()) {
      entries_ok = entries_ok && e.id().size() == 32 && e.offset() >= 8 && e.offset() <= body &&
                   e.length() <= body - e.offset();
    }
    FUZZ_CHECK(info.ok() == entries_ok);
  }
  if (info.ok()) {
    for (const PackedChunk& c : info->chunks) {
      FUZZ_CHECK(c.offset >= 8);
      FUZZ_CHECK(c.offset <= body && c.length <= body - c.offset);
      // A round trip through the entry form.
      v1::PackTrailer::Entry e;
      ToEntry(c, &e);
      auto back = FromEntry(e, "fuzz");
      FUZZ_CHECK(back.ok() && back->id == c.id && back->offset == c.offset &&
                 back->length == c.length && back->plaintext_length == c.plaintext_length);
    }
    (void)CheckPack(repo.keys(), Scratch(), key, /*read_data=*/true);
  }
  (void)RemoveDurably(path);
}

void FuzzIndex(const std::string& plaintext) {
  const Repository& repo = Repo();
  const std::string session = "20250101T000000.000000Z-fuzz0001";
  auto sealed = SealBlob(repo.keys(), absl::StrCat("index ", session), plaintext);
  FUZZ_CHECK(sealed.ok());
  const std::string key = absl::StrCat(session, ".idx");
  WriteScratchFile(Scratch().Name(key), *sealed);
  auto packs = ReadIndexFile(repo.keys(), Scratch(), key);
  if (!packs.ok()) return;
  ChunkIndex index;
  ChunkReadBuffers buffers;
  for (const PackInfo& p : *packs) {
    index.AddPack(p);
    // What restore does with the index's word for where a chunk is.
    for (const PackedChunk& c : p.chunks) {
      (void)ReadPackedChunkIn(repo.keys(), Scratch(), SmallPack(), c, &buffers);
    }
  }
  index.Compact();
  for (const PackInfo& p : *packs) {
    for (const PackedChunk& c : p.chunks) FUZZ_CHECK(index.Contains(c.id));
  }
}

}  // namespace

int FuzzRepoPlaintext(const uint8_t* data, size_t size) {
  if (size < 3 || size > (1 << 20)) return 0;
  const uint8_t mode = data[0] % 3;
  const uint32_t body_length = data[1] | (uint32_t{data[2]} << 8);
  if (mode == 0) FuzzManifest(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  if (mode == 1)
    FuzzTrailer(body_length, std::string(reinterpret_cast<const char*>(data + 3), size - 3));
  if (mode == 2) FuzzIndex(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  return 0;
}

}  // namespace dagvault::fuzz

DAGVAULT_FUZZ_TARGET(FuzzRepoPlaintext)
