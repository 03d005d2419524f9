// Writes seed inputs for every fuzz target into <out>/<target>/, made by
// the same encoders the engine and the repository write files with (a log
// file, .edb header pages and a B-tree page, a checkpoint, a manifest, a
// pack trailer, an index file, sealed objects under the fuzz key), plus the
// example configurations of deploy/examples/ and some cron expressions.
//
//   fuzz_seed_generator OUT_DIR
//
// tests/fuzz/corpus/ holds its output (committed); tests/fuzz/run.sh runs
// it again so the seeds follow the formats.
#include <zstd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "mailstore/format/checkpoint.h"
#include "mailstore/format/edb_header.h"
#include "mailstore/format/log_format.h"
#include "mailstore/format/page.h"
#include "repository/block_map.h"
#include "repository/crypto.h"
#include "tests/fuzz/fuzz_entry.h"

namespace dagvault::fuzz {
namespace {

namespace fs = std::filesystem;
using namespace dagvault::mailstore;
using namespace dagvault::repository;

std::string out_dir;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = fs::path(out_dir) / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string Byte(uint8_t b) { return std::string(1, static_cast<char>(b)); }

Signature Sig(uint8_t fill) {
  Signature s;
  s.random.fill(fill);
  s.created_us = 1700000000000000;
  return s;
}

std::string Bytes(const void* p, size_t n) { return std::string(static_cast<const char*>(p), n); }

std::string LogFile(uint32_t file_size, bool with_image) {
  LogHeader h;
  h.generation = 5;
  h.file_size = file_size;
  h.log_signature = Sig(0xab);
  h.created_us = 1700000000000000;
  h.has_prev_link = true;
  h.prev_link.fill(0x11);
  h.page_size = 4096;
  h.databases = {{0, Sig(0xcd)}};
  std::string out = EncodeLogHeader(h);
  auto lsn = [&] { return Lsn{h.generation, static_cast<uint32_t>(out.size())}; };
  auto span = [](const std::string& s) {
    return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  uint32_t records = 0;
  const std::string start = EncodeTermBody({1700000000000001});
  AppendRecord(&out, lsn(), RecordType::kStart, 0, {span(start)});
  ++records;
  // A delta of two ranges over page 7.
  uint8_t prefix[kPageDeltaPrefixSize];
  EncodePageDeltaPrefix(7, 2, 41, 42, prefix);
  std::string ranges;
  auto range = [&](uint16_t off, const std::string& bytes) {
    uint8_t h4[4];
    StoreU16(h4, off);
    StoreU16(h4 + 2, static_cast<uint16_t>(bytes.size()));
    ranges += Bytes(h4, 4) + bytes;
  };
  range(32, "hello");
  range(4000, std::string(16, 'z'));
  AppendRecord(&out, lsn(), RecordType::kPageDelta, 0,
               {absl::MakeConstSpan(prefix, sizeof(prefix)), span(ranges)});
  ++records;
  EncodePageDeltaPrefix(9, 1, 0, 43, prefix);
  ranges.clear();
  range(100, "sparse");
  AppendRecord(&out, lsn(), RecordType::kPageImageSparse, 0,
               {absl::MakeConstSpan(prefix, sizeof(prefix)), span(ranges)});
  ++records;
  if (with_image) {
    std::string page(4096, '\0');
    InitPage(reinterpret_cast<uint8_t*>(page.data()), 4096, 11, PageType::kBTreeLeaf);
    uint8_t ip[kPageImagePrefixSize];
    EncodePageImagePrefix(11, 44, ip);
    AppendRecord(&out, lsn(), RecordType::kPageImage, 0,
                 {absl::MakeConstSpan(ip, sizeof(ip)), span(page)});
    ++records;
  }
  const std::string commit = EncodeCommitBody({9, 1700000000000002, records});
  AppendRecord(&out, lsn(), RecordType::kCommit, 0, {span(commit)});
  ++records;
  const std::string seal = EncodeSealBody({records, 1700000000000003});
  AppendRecord(&out, lsn(), RecordType::kSeal, 0, {span(seal)});
  out.resize(file_size, '\0');
  return out;
}

DbHeader Header(uint32_t page_size) {
  DbHeader h;
  h.page_size = page_size;
  h.db_signature = Sig(0x21);
  h.log_signature = Sig(0xab);
  h.state = DbState::kDirtyShutdown;
  h.db_name = "MDB01";
  h.log_required_min = 3;
  h.log_required_max = 5;
  h.log_committed = 5;
  h.consistent_lsn = Lsn{2, 4096};
  h.dbtime = 1234;
  h.checkpoint = Lsn{3, 8192};
  h.update_count = 17;
  h.previous_full = {1, 2, 1690000000000000, true};
  return h;
}

std::string EdbStart(uint32_t page_size, bool damage_copy0, bool leaf) {
  DbHeader h = Header(page_size);
  std::string out((leaf ? 3 : 2) * size_t{page_size}, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  EncodeDbHeader(h, 0, p);
  h.update_count++;
  EncodeDbHeader(h, 1, p + page_size);
  if (damage_copy0) p[200] ^= 0xff;
  if (leaf) {
    uint8_t* page = p + 2 * page_size;
    InitPage(page, page_size, 2, PageType::kBTreeLeaf);
    SetPageDbTime(page, 99);
    for (uint32_t i = 64; i < 160; ++i) page[i] = static_cast<uint8_t>(i);
    SealPage(page, page_size);
  }
  return out;
}

void MailstoreSeeds() {
  Write("log_format", "sealed-8k", Byte(0) + LogFile(8192, false));
  Write("log_format", "sealed-image-12k", Byte(0) + LogFile(12288, true));
  Write("log_format", "fixup-8k", Byte(3) + LogFile(8192, false));
  std::string torn = LogFile(8192, false);
  torn[4096 + 40] ^= 1;
  Write("log_format", "torn-8k", Byte(0) + torn);

  Write("edb_page", "header-4k", Byte(0) + EdbStart(4096, false, false));
  Write("edb_page", "header-leaf-4k", Byte(0) + EdbStart(4096, false, true));
  Write("edb_page", "header-copy0-damaged-4k", Byte(0) + EdbStart(4096, true, false));
  Write("edb_page", "header-8k", Byte(1) + EdbStart(8192, false, false));

  Checkpoint c;
  c.log_signature = Sig(0xab);
  c.position = Lsn{5, 4096};
  c.time_us = 1700000000000000;
  c.update_count = 3;
  c.databases = {{0, Sig(0xcd)}, {1, Sig(0xce)}};
  std::string chk = EncodeCheckpointFile(c);
  Write("checkpoint", "both-copies", Byte(0) + chk);
  chk[100] ^= 1;
  Write("checkpoint", "copy0-damaged", Byte(0) + chk);
  Write("checkpoint", "fixup", Byte(1) + chk);
}

std::string Id(uint8_t fill) { return std::string(32, static_cast<char>(fill)); }

dagvault::v1::Manifest Manifest() {
  dagvault::v1::Manifest m;
  m.set_format_version(1);
  m.set_id("20250101T000000.000000Z-fuzz0000");
  m.set_unit("SG01");
  m.set_session("20250101T000000.000000Z-fuzz0000");
  m.set_low_generation(3);
  m.set_high_generation(5);
  (*m.mutable_labels())["type"] = "full";
  auto* db = m.add_files();
  db->set_name("MDB01.edb");
  db->set_role("database");
  db->set_size(3 * 8192 + 100);
  db->set_sha256(std::string(32, '\x5a'));
  auto* map = db->mutable_block_map();
  map->set_block_size(8192);
  map->set_chunk_ids(Id(1) + Id(2));
  std::string blocks;
  AppendBlockRecord({0x1111, BlockRecord::Ref(0, 0)}, &blocks);
  AppendBlockRecord({0, kZeroBlockRef}, &blocks);
  AppendBlockRecord({0x2222, BlockRecord::Ref(1, 3)}, &blocks);
  AppendBlockRecord({0x3333, BlockRecord::Ref(0, 1)}, &blocks);
  map->set_blocks(blocks);
  auto* log = m.add_files();
  log->set_name("logs/E0000000005.log");
  log->set_role("log");
  log->set_generation(5);
  log->set_size(70000);
  auto* c1 = log->add_chunks();
  c1->set_id(Id(3));
  c1->set_length(65536);
  auto* c2 = log->add_chunks();
  c2->set_id(Id(4));
  c2->set_length(4464);
  return m;
}

void RepositorySeeds() {
  const std::string manifest = Manifest().SerializeAsString();
  Write("repo_plaintext", "manifest", Byte(0) + manifest);
  dagvault::v1::PackTrailer trailer;
  trailer.set_format_version(1);
  uint64_t offset = 8;
  for (uint8_t i = 1; i <= 3; ++i) {
    auto* e = trailer.add_entries();
    e->set_id(Id(i));
    e->set_offset(offset);
    e->set_length(100 + i);
    e->set_plaintext_length(4096);
    offset += 100 + i;
  }
  const uint32_t body = static_cast<uint32_t>(offset - 8);
  Write("repo_plaintext", "trailer",
        Byte(1) + Byte(body & 0xff) + Byte(body >> 8) + trailer.SerializeAsString());
  dagvault::v1::IndexFile index;
  index.set_format_version(1);
  index.set_session("20250101T000000.000000Z-fuzz0001");
  auto* pack = index.add_packs();
  pack->set_id(std::string(64, 'a'));
  *pack->mutable_entries() = trailer.entries();
  Write("repo_plaintext", "index", Byte(2) + index.SerializeAsString());

  auto keys = RepositoryKeys::FromKey(absl::string_view(kFuzzRepositoryKey, kKeySize));
  if (!keys.ok()) std::abort();
  const std::string plain = "From: a@example.net\r\nSubject: seed\r\n\r\n" + std::string(300, 'm');
  const ChunkId id = keys->Id(plain);
  const std::string id_bytes = Bytes(id.data(), id.size());
  Write("sealed_blob", "chunk", Byte(0) + id_bytes + *SealChunk(*keys, id, plain));
  const ChunkId small_id = keys->Id("abc");
  Write("sealed_blob", "chunk-raw",
        Byte(0) + Bytes(small_id.data(), 32) + *SealChunk(*keys, small_id, "abc"));
  Write("sealed_blob", "blob-manifest",
        Byte(0) + Id(0) + *SealBlob(*keys, kFuzzBlobBinding, manifest));
  Write("sealed_blob", "roundtrip", Byte(1) + plain);
  std::string frame(ZSTD_compressBound(plain.size()), '\0');
  frame.resize(ZSTD_compress(frame.data(), frame.size(), plain.data(), plain.size(), 3));
  Write("sealed_blob", "forged-zstd", Byte(2) + Byte(1) + frame);
  Write("sealed_blob", "forged-raw", Byte(2) + Byte(0) + plain.substr(0, 64));
}

std::string ReadSource(const std::string& path) {
  std::ifstream in(fs::path(DAGVAULT_SOURCE_DIR) / path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void TextSeeds() {
  Write("text_config", "agent.conf", Byte(0) + ReadSource("deploy/examples/agent.conf"));
  Write("text_config", "coordinator.conf",
        Byte(1) + ReadSource("deploy/examples/coordinator.conf"));
  Write("text_config", "mailstored.conf", Byte(2) + ReadSource("deploy/examples/mailstored.conf"));
  Write("text_config", "unit.conf",
        Byte(3) + "name: \"DB01\"\nmode: DATABASE\nlog_prefix: \"E00\"\nsystem_dir: \"/srv/db\"\n");

  const char* crons[] = {"0 1 * * sun",
                         "*/15 * * * *",
                         "30 2 1-7 * mon",
                         "0 0 30 2 *",
                         "5,10-20/3 */2 1,15 jan-jun mon-fri",
                         "59 23 31 12 7"};
  int i = 0;
  for (const char* c : crons) {
    uint64_t t = 1700000000 + 977 * static_cast<uint64_t>(i);
    Write("cron", absl::StrCat("cron-", i++), Bytes(&t, 8) + c);
  }
  const char* names[] = {"MDB01.edb", "logs/E0000000005.log", "E00.chk", "SG01/MDB01A.edb"};
  i = 0;
  for (const char* n : names) Write("restore_names", absl::StrCat("name-", i++), n);
}

}  // namespace
}  // namespace dagvault::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seed_generator OUT_DIR\n");
    return 2;
  }
  dagvault::fuzz::out_dir = argv[1];
  dagvault::fuzz::MailstoreSeeds();
  dagvault::fuzz::RepositorySeeds();
  dagvault::fuzz::TextSeeds();
  return 0;
}
