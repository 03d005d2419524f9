// Issue 15 §3, the tampering suite. Each case damages a repository, a
// source or a chain the way an attacker or a failing disk would, and must
// be DETECTED, NAMED (the error names the pack, chunk, index file,
// manifest, file, page or generation at fault) and LEAVE NOTHING
// HALF-WRITTEN (a failed restore leaves no file under its target; a check
// or a chain assembly changes nothing in the repository; a failed backup
// writes no manifest). Repository cases go through the real `dagvault repo`
// binary; the source page and the chains through the libraries the agent
// and the coordinator use. At the end the suite prints a table of every
// case and fails unless every one passed all three.
#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node-agent/verify/unit_files_testing.h"
#include "node-agent/verify/unit_verifier.h"
#include "repository/chain.h"
#include "repository/check.h"
#include "repository/pack.h"
#include "repository/repository.h"
#include "repository/repository_test_util.h"
#include "tests/repository/repo_cli.h"

namespace dagvault::repository {
namespace {

namespace fs = std::filesystem;
namespace v1 = dagvault::v1;
using ::dagvault::testing::ProcessResult;
using namespace testing;  // NOLINT: the shared test helpers

// One case of the table.
struct Row {
  std::string name;
  bool detected = false;
  std::vector<std::string> named;  // the error texts found that name the culprit
  bool clean = false;              // nothing half-written
  bool passed() const { return detected && !named.empty() && clean; }
};

constexpr size_t kCases = 14;

std::vector<Row>& Rows() {
  static auto* rows = new std::vector<Row>;
  return *rows;
}

// A case's row, recorded when the test ends however it ends (an ASSERT
// returns early and leaves what it had found).
class Case {
 public:
  explicit Case(std::string name) { row_.name = std::move(name); }
  ~Case() {
    Rows().push_back(row_);
    EXPECT_TRUE(row_.detected) << row_.name << ": not detected";
    EXPECT_FALSE(row_.named.empty()) << row_.name << ": no error named the culprit";
    EXPECT_TRUE(row_.clean) << row_.name << ": something was left half-written or changed";
  }
  Row& row() { return row_; }

 private:
  Row row_;
};

// For the table: 64-hex-digit ids cut to 12 digits, the test's folder
// replaced by $T.
std::string Shorten(std::string text, const std::string& dir) {
  for (size_t at; !dir.empty() && (at = text.find(dir)) != std::string::npos;) {
    text.replace(at, dir.size(), "$T");
  }
  std::string out;
  for (size_t i = 0; i < text.size();) {
    size_t j = i;
    while (j < text.size() && std::isxdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j - i >= 64) {
      out += text.substr(i, 12) + "…";
    } else {
      out += text.substr(i, std::max<size_t>(j - i, 1));
    }
    i = std::max(j, i + 1);
  }
  return out.size() > 260 ? out.substr(0, 260) + " [...]" : out;
}

class Table : public ::testing::Environment {
 public:
  void TearDown() override {
    const auto& rows = Rows();
    size_t passed = 0;
    std::string out =
        "\nTampering suite (issue 15 §3)\n"
        "case                                                  detected  nothing half-written  "
        "named\n";
    for (const Row& r : rows) {
      passed += r.passed();
      std::string name = r.name;
      name.resize(std::max<size_t>(name.size(), 54), ' ');
      absl::StrAppend(&out, name, r.detected ? "yes       " : "no        ",
                      r.clean ? "yes                   " : "no                    ",
                      r.named.empty() ? "(nothing named)" : r.named[0], "\n");
      for (size_t i = 1; i < r.named.size(); ++i) {
        absl::StrAppend(&out, std::string(86, ' '), r.named[i], "\n");
      }
    }
    const double rate = rows.empty() ? 0 : 100.0 * passed / rows.size();
    absl::StrAppend(&out, "detection rate: ", passed, " of ", rows.size(), " cases (",
                    absl::StrFormat("%.0f", rate), "%) detected, named and left whole; ", kCases,
                    " cases in the suite\n");
    std::printf("%s", out.c_str());
    std::fflush(stdout);
    EXPECT_EQ(passed, rows.size()) << "the tampering suite's rate is under 100%";
    // Every case must have run, unless a filter chose some.
    if (GTEST_FLAG_GET(filter) == "*") {
      EXPECT_EQ(rows.size(), kCases);
    }
  }
};
::testing::Environment* const kTable = ::testing::AddGlobalTestEnvironment(new Table);

// Every file under `root` and its digest: what "changed nothing" compares.
std::map<std::string, std::string> Snapshot(const std::string& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) files[e.path().string()] = Sha256Hex(ReadFile(e.path().string()));
  }
  return files;
}

// Whether `text` holds `want`; alternatives are separated by '|'.
bool Holds(const std::string& text, const std::string& want) {
  for (absl::string_view alt : absl::StrSplit(want, '|')) {
    if (absl::StrContains(text, alt)) return true;
  }
  return false;
}

// The first line of `text` that holds every string of `names`, or "".
std::string LineNaming(const std::string& text, const std::vector<std::string>& names) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    const std::string l(line);
    if (std::all_of(names.begin(), names.end(), [&](const auto& n) { return Holds(l, n); })) {
      return l;
    }
  }
  return "";
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

class Tampering : public RepoCli {
 protected:
  std::string ManifestFile(const std::string& id) { return repo_ + "/manifests/" + id + ".mf"; }

  // Runs `check --read-data` and a restore of `id` into a new folder, and
  // fills the row: detected when the check exits 1 and the restore fails;
  // named when a line of the check's output holds every string of
  // `check_names` and the restore's error holds every one of
  // `restore_names`; nothing half-written when the repository is byte for
  // byte what it was before both and the restore left no file at all.
  void Judge(Row* row, const std::string& id, const std::vector<std::string>& check_names,
             const std::vector<std::string>& restore_names) {
    const auto before = Snapshot(repo_);
    const ProcessResult check = Repo({"check", "--read-data"});
    const std::string to = dir_.Sub("restored-" + id);
    const ProcessResult restore = RestoreTo(id, to);
    bool left = false;
    if (fs::exists(to)) {
      for (const auto& e : fs::recursive_directory_iterator(to)) {
        if (!e.is_directory()) {
          left = true;
          ADD_FAILURE() << row->name << ": a failed restore left " << e.path();
        }
      }
    }
    const bool unchanged = Snapshot(repo_) == before;
    EXPECT_TRUE(unchanged) << row->name << ": check or restore changed the repository";
    row->detected = check.exit_code == 1 && !restore.ok() && restore.exit_code != -1;
    row->clean = unchanged && !left;
    const std::string checked = LineNaming(check.out, check_names);
    const std::string restored = LineNaming(restore.err, restore_names);
    EXPECT_FALSE(checked.empty()) << row->name << ": check said\n" << check.out << check.err;
    EXPECT_FALSE(restored.empty()) << row->name << ": restore said\n" << restore.err;
    if (!checked.empty() && !restored.empty()) {
      row->named = {"check: " + Shorten(checked, dir_.path()),
                    "restore: " + Shorten(restored, dir_.path())};
    }
  }

  // The sealed chunks a pack's trailer lists.
  PackInfo TrailerOf(const std::string& pack) {
    auto repo = Repository::Open(repo_, *PassphraseFromFile(pass_));
    EXPECT_TRUE(repo.ok()) << repo.status();
    auto info = ReadPackIndex(repo->keys(), repo->store(),
                              std::filesystem::path(pack).lexically_relative(repo_).string());
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : PackInfo{};
  }
};

TEST_F(Tampering, C1_AFlippedByteInAPack) {
  Case c("1  a flipped byte in a pack");
  const std::string id = BackUp("a.edb", MakeEdbLike(1024, 1));
  const auto packs = Packs();
  ASSERT_EQ(packs.size(), 1u);
  std::string bytes = ReadFile(packs[0]);
  bytes[bytes.size() / 2] ^= 0x40;
  WriteFile(packs[0], bytes);
  Judge(&c.row(), id, {"error: pack " + packs[0], "chunk ", "authentication failed"},
        {"pack " + packs[0], "chunk ", "authentication failed"});
}

TEST_F(Tampering, C2_ATruncatedPack) {
  Case c("2  a truncated pack");
  const std::string id = BackUp("a.edb", MakeEdbLike(1024, 1));
  const auto packs = Packs();
  ASSERT_EQ(packs.size(), 1u);
  const std::string bytes = ReadFile(packs[0]);
  WriteFile(packs[0], bytes.substr(0, bytes.size() / 2));
  Judge(&c.row(), id, {"error: pack " + packs[0], "truncated"}, {"pack " + packs[0], "chunk "});
}

TEST_F(Tampering, C3_ADeletedIndexFile) {
  Case c("3  a deleted index file");
  const std::string id = BackUp("a.edb", MakeEdbLike(1024, 1));
  // A backup's index file is named by its session, which is its manifest's id.
  const std::string index = repo_ + "/index/" + id + ".idx";
  ASSERT_TRUE(fs::remove(index));
  Judge(&c.row(), id,
        {"manifest " + id, "is in no index", "index file " + index + " of its backup is missing"},
        {"manifest " + id, "chunk ", "is in no index"});
}

TEST_F(Tampering, C4_AnAlteredManifest) {
  Case c("4  an altered manifest");
  const std::string id = BackUp("a.edb", MakeEdbLike(1024, 1));
  const std::string mf = ManifestFile(id);
  std::string m = ReadFile(mf);
  m[m.size() - 20] ^= 1;
  WriteFile(mf, m);
  Judge(&c.row(), id, {"error: manifest file " + mf, "authentication failed"},
        {"manifest file " + mf, "authentication failed"});
}

// Two sealed chunks of one length: incompressible data is stored raw, so
// every full 4 MiB chunk of a block map seals to the same length.
std::pair<PackedChunk, PackedChunk> SameLength(const PackInfo& a, const PackInfo& b) {
  for (const auto& x : a.chunks) {
    for (const auto& y : b.chunks) {
      if (x.length == y.length && x.id != y.id) return {x, y};
    }
  }
  ADD_FAILURE() << "no two chunks of one length";
  return {};
}

TEST_F(Tampering, C5a_ChunksExchangedBetweenTwoPacks) {
  Case c("5a two chunks of equal length exchanged between packs");
  const std::string ma = BackUp("a.edb", RandomBytes(8 << 20, 1), "DB01");
  BackUp("b.edb", RandomBytes(8 << 20, 2), "DB02");
  const auto packs = Packs();
  ASSERT_EQ(packs.size(), 2u);
  const PackInfo a = TrailerOf(packs[0]), b = TrailerOf(packs[1]);
  const auto [x, y] = SameLength(a, b);
  ASSERT_GT(x.length, 0u);
  std::string pa = ReadFile(packs[0]), pb = ReadFile(packs[1]);
  const std::string from_a = pa.substr(x.offset, x.length);
  pa.replace(x.offset, x.length, pb.substr(y.offset, y.length));
  pb.replace(y.offset, y.length, from_a);
  WriteFile(packs[0], pa);
  WriteFile(packs[1], pb);
  // Both packs keep their names (their tails are untouched): only opening
  // each chunk under the id it must have sees the exchange.
  Judge(&c.row(), ma,
        {"error: pack " + packs[0] + ": chunk " + ChunkIdHex(x.id), "authentication failed"},
        {"pack " + packs[0] + ": chunk " + ChunkIdHex(x.id) + "|pack " + packs[1] + ": chunk " +
             ChunkIdHex(y.id),
         "authentication failed"});
  // The other pack's chunk is named too.
  EXPECT_THAT(Repo({"check", "--read-data"}).out,
              ::testing::HasSubstr("pack " + packs[1] + ": chunk " + ChunkIdHex(y.id)));
}

TEST_F(Tampering, C5b_AChunkOverwrittenByAnotherValidSealedChunk) {
  Case c("5b a chunk overwritten by another valid sealed chunk");
  const std::string id = BackUp("a.edb", RandomBytes(8 << 20, 3));
  const auto packs = Packs();
  ASSERT_EQ(packs.size(), 1u);
  const PackInfo p = TrailerOf(packs[0]);
  const auto [x, y] = SameLength(p, p);
  ASSERT_GT(x.length, 0u);
  std::string bytes = ReadFile(packs[0]);
  bytes.replace(x.offset, x.length, bytes.substr(y.offset, y.length));
  WriteFile(packs[0], bytes);
  Judge(&c.row(), id,
        {"error: pack " + packs[0] + ": chunk " + ChunkIdHex(x.id), "authentication failed"},
        {"pack " + packs[0] + ": chunk " + ChunkIdHex(x.id), "authentication failed"});
}

TEST_F(Tampering, C6a_AnOldManifestPutBackUnderANewerOnesName) {
  Case c("6a an old manifest copied over a newer one's file");
  const std::string old_id = BackUp("a.edb", MakeEdbLike(512, 1));
  const std::string new_id = BackUp("a.edb", MakeEdbLike(512, 2));
  ASSERT_LT(old_id, new_id);
  WriteFile(ManifestFile(new_id), ReadFile(ManifestFile(old_id)));
  Judge(&c.row(), new_id,
        {"error: manifest file " + ManifestFile(new_id), "is not what it is named"},
        {"manifest file " + ManifestFile(new_id), "is not what it is named"});
}

TEST_F(Tampering, C6b_AnOldManifestPutBackUnderAFreshId) {
  Case c("6b an old manifest copied to a fresh id");
  const std::string old_id = BackUp("a.edb", MakeEdbLike(512, 1));
  const std::string fresh = "29991231T235959.999999Z-0badf00d";
  WriteFile(ManifestFile(fresh), ReadFile(ManifestFile(old_id)));
  Judge(&c.row(), fresh, {"error: manifest file " + ManifestFile(fresh), "is not what it is named"},
        {"manifest file " + ManifestFile(fresh), "is not what it is named"});
}

// Case 7: the agent's inline check (node-agent/verify, as in
// unit_verifier_test's ADamagedPageIsNamedByNumberAndOffset) run by a real
// backup of a unit whose database has a damaged page on the source.
TEST(TamperingSource, C7_ACorruptEdbPageOnTheSource) {
  Case c("7  a corrupt .edb page on the source");
  ::dagvault::testing::TempDir dir("tampering_source");
  auto repo = Repository::Init(dir.Sub("repo"), TestPassphrase(), FastInit());
  ASSERT_TRUE(repo.ok()) << repo.status();
  ASSERT_TRUE(CreateDirectories(dir.Sub("DB/logs")).ok());

  using namespace ::dagvault::agent::unit_files;  // NOLINT
  std::string db = Database(64, 1);
  db[size_t{37} * kPage + 100] ^= 1;
  std::vector<BackupFile> files = {{dir.Sub("DB/DB.edb"), "DB.edb", "database", "DB", 0}};
  WriteFile(files[0].path, db);
  std::string link = Sha("generation 4");
  for (uint32_t g = 5; g <= 7; ++g) {
    const std::string log = Log(g, link);
    const std::string name = absl::StrCat("logs/E01", g, ".log");
    files.push_back({dir.Sub("DB/" + name), name, "log", "log", g});
    WriteFile(files.back().path, log);
    link = Sha(log);
  }
  std::vector<std::string> sources;
  for (const auto& f : files) sources.push_back(f.path);
  agent::UnitExpectations e;
  e.unit = "DB";
  e.type = v1::FULL;
  e.log_signature = absl::BytesToHexString(kLogSig);
  e.database_signatures = {absl::BytesToHexString(kDbSig)};
  e.low_generation = 5;
  e.high_generation = 7;
  e.checkpoint_generation = 5;
  auto verifier = agent::UnitVerifier::Create(e, files, sources);
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  BackupOptions options;
  options.observer = verifier->get();
  options.workers = 2;
  v1::Manifest header = Header("DB");
  header.set_low_generation(5);
  header.set_high_generation(7);
  auto m = Backup(*repo, files, header, options);

  c.row().detected = !m.ok() && m.status().code() == absl::StatusCode::kDataLoss;
  const std::string said(m.status().message());
  const std::string page = absl::StrCat("page 37 (offset ", 37 * kPage, "): checksum mismatch");
  EXPECT_THAT(said, ::testing::HasSubstr(page));
  if (said.find(page) != std::string::npos && said.find("DB.edb") != std::string::npos) {
    c.row().named = {"backup: " + Shorten(said, dir.path())};
  }
  // No manifest; whatever packs the backup had written are in no index and
  // a check finds no error; the source is as it was.
  auto manifests = repo->ListManifests();
  ASSERT_TRUE(manifests.ok());
  auto report = Check(*repo);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->clean()) << report->errors.front();
  c.row().clean = manifests->empty() && report->clean() && ReadFile(files[0].path) == db;
}

// Case 8: chains assembled from manifests in a real repository, as the
// agent (BaseFor) and a restore (RestoreChain) read them: a Full of
// generations 1-3, Incrementals of 4-6 and 7-9, one of them tampered with.
class TamperedChain : public ::testing::Test {
 protected:
  static std::string LogSha(uint32_t g, char stream) {
    return absl::StrCat(std::string(1, stream), "-log-", g);
  }

  v1::Manifest Piece(v1::BackupType type, uint32_t low, uint32_t high) {
    v1::Manifest m = Header("DB");
    ++pieces_;
    m.set_id(absl::StrCat("20260101T00000", pieces_, ".000000Z-0000000", pieces_));
    m.set_session(m.id());
    m.set_type(type);
    m.set_low_generation(low);
    m.set_high_generation(high);
    m.set_log_signature("stream-a");
    m.add_database_signatures("db");
    for (uint32_t g = low; g <= high; ++g) {
      v1::ManifestFile* f = m.add_files();
      f->set_role("log");
      f->set_name(absl::StrCat("logs/E01", g, ".log"));
      f->set_generation(g);
      f->set_sha256(LogSha(g, 'a'));
      if (g > 1) f->set_link_hash(LogSha(g - 1, 'a'));
    }
    return m;
  }

  // Writes the chain (after `tamper` changed its pieces) and assembles it
  // as the agent does; fills the row: detected when the chain is broken and
  // both the next Incremental's base and a restore to the
  // newest point are refused naming `generation`; nothing half-written when reading
  // changed nothing in the repository.
  void Run(Row* row, uint32_t generation,
           const std::function<void(std::vector<v1::Manifest>*)>& tamper) {
    auto repo = Repository::Init(dir_.Sub("repo"), TestPassphrase(), FastInit());
    ASSERT_TRUE(repo.ok()) << repo.status();
    std::vector<v1::Manifest> pieces = {Piece(v1::FULL, 1, 3), Piece(v1::INCREMENTAL, 4, 6),
                                        Piece(v1::INCREMENTAL, 7, 9)};
    tamper(&pieces);
    for (const auto& p : pieces) ASSERT_TRUE(repo->WriteManifest(p).ok());
    const auto before = Snapshot(repo->root());
    auto read = repo->ReadManifestsOfUnit("DB");
    ASSERT_TRUE(read.ok()) << read.status();
    const std::vector<Chain> chains = AssembleChains(*read, "DB");
    ASSERT_EQ(chains.size(), 1u);
    const auto base = BaseFor(chains, v1::INCREMENTAL, "DB");
    const auto restore = RestoreChain(chains, 0, "DB");
    const std::string at = absl::StrFormat("breaks at generation 0x%08X", generation);
    row->detected = chains[0].broken.has_value() && !base.ok() && !restore.ok();
    EXPECT_TRUE(row->detected) << (chains[0].broken ? chains[0].broken->reason : "not broken");
    const std::string said(restore.status().message());
    EXPECT_THAT(said, ::testing::HasSubstr(at));
    EXPECT_THAT(std::string(base.status().message()), ::testing::HasSubstr(at));
    if (said.find(at) != std::string::npos) {
      row->named = {"restore: " + Shorten(said, dir_.path())};
    }
    row->clean = Snapshot(repo->root()) == before;
  }

  ::dagvault::testing::TempDir dir_{"tampering_chain"};
  int pieces_ = 0;
};

TEST_F(TamperedChain, C8a_AMissingBackupInTheMiddle) {
  Case c("8a a missing backup (logs 4-6) in the middle");
  Run(&c.row(), 4, [](auto* p) { p->erase(p->begin() + 1); });
}

TEST_F(TamperedChain, C8b_ALogMissingInsideABackup) {
  Case c("8b a log (generation 5) missing inside a backup");
  Run(&c.row(), 5, [](auto* p) { (*p)[1].mutable_files()->DeleteSubrange(1, 1); });
}

TEST_F(TamperedChain, C8c_AForeignLogInsideABackup) {
  Case c("8c a foreign log (generation 5) inside a backup");
  Run(&c.row(), 5, [](auto* p) {
    (*p)[1].mutable_files(1)->set_sha256(LogSha(5, 'z'));
    (*p)[1].mutable_files(1)->set_link_hash(LogSha(4, 'z'));
  });
}

TEST_F(TamperedChain, C8d_ABackupOfAnotherLogStream) {
  Case c("8d a backup (logs 7-9) of another log stream");
  Run(&c.row(), 7, [](auto* p) { (*p)[2].set_log_signature("stream-b"); });
}

TEST_F(TamperedChain, C8e_ALinkHashThatDoesNotJoin) {
  Case c("8e a first log (7) whose link hash does not join");
  Run(&c.row(), 7, [](auto* p) { (*p)[2].mutable_files(0)->set_link_hash(LogSha(6, 'z')); });
}

}  // namespace
}  // namespace dagvault::repository
