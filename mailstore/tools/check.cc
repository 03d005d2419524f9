#include "mailstore/tools/check.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "mailstore/engine/btree.h"
#include "mailstore/engine/database_file.h"
#include "mailstore/engine/digest.h"
#include "mailstore/engine/item_table.h"
#include "mailstore/engine/layout.h"
#include "mailstore/engine/memory_page_access.h"
#include "mailstore/format/checkpoint.h"
#include "mailstore/format/codec.h"
#include "mailstore/format/edb_header.h"
#include "mailstore/format/log_format.h"
#include "mailstore/format/page.h"

namespace dagvault::mailstore {
namespace {

constexpr size_t kReadChunk = 8 << 20;

void AddError(FileCheck& fc, const CheckOptions& options, std::string error) {
  if (fc.errors.size() < options.max_errors_per_file) {
    fc.errors.push_back(std::move(error));
  } else {
    fc.errors_not_listed++;
  }
}

enum class Kind { kDatabase, kLog, kCheckpoint, kUnknown };

Kind Sniff(const std::string& path) {
  char head[48] = {};
  auto f = File::OpenReadOnly(path);
  if (!f.ok()) return Kind::kUnknown;
  auto n = f->ReadAtMost(0, head, sizeof(head));
  if (!n.ok() || *n < 8) return Kind::kUnknown;
  if (std::memcmp(head, "MSTORLOG", 8) == 0) return Kind::kLog;
  if (std::memcmp(head, "MSTORCHK", 8) == 0) return Kind::kCheckpoint;
  if (*n >= 40 && std::memcmp(head + 32, "MSTOREDB", 8) == 0) return Kind::kDatabase;
  // A database whose first header copy is damaged still ends in .edb.
  if (path.size() > 4 && path.substr(path.size() - 4) == ".edb") return Kind::kDatabase;
  if (path.size() > 4 && path.substr(path.size() - 4) == ".chk") return Kind::kCheckpoint;
  if (path.size() > 4 && path.substr(path.size() - 4) == ".log") return Kind::kLog;
  return Kind::kUnknown;
}

// Walks the tree and every long value; compares what is reachable with
// what the space map says is allocated, and the items with the meta page.
void DeepCheck(const DatabaseFile& db, uint64_t page_count, const CheckOptions& options,
               FileCheck& fc) {
  FilePageReader reader(db);
  std::vector<bool> reachable(page_count, false);
  for (PageNo p = 0; p < kFirstDataPage && p < page_count; ++p) reachable[p] = true;
  const uint32_t per_map = space_map_layout::PagesPerMap(db.page_size());
  for (uint64_t p = per_map; p < page_count; p += per_map) reachable[p] = true;
  uint64_t items = 0, bytes = 0;
  BTree tree(reader, nullptr);
  absl::Status s = tree.VisitPages([&](PageNo pgno, const uint8_t*) -> absl::Status {
    if (pgno >= page_count) {
      return absl::DataLossError(
          absl::StrFormat("tree page %u lies past the end of the file", pgno));
    }
    if (reachable[pgno] && pgno != kRootPage) {
      return absl::DataLossError(absl::StrFormat("page %u is reached twice", pgno));
    }
    reachable[pgno] = true;
    return absl::OkStatus();
  });
  if (!s.ok()) {
    AddError(fc, options, absl::StrCat("B-tree: ", s.message()));
    return;
  }
  ItemTable table(reader, nullptr);
  s = table.ForEach([&](const ItemKey&, absl::string_view value) {
    items++;
    bytes += value.size();
    return absl::OkStatus();
  });
  if (!s.ok()) {
    AddError(fc, options, absl::StrCat("items: ", s.message()));
    return;
  }
  // Long-value pages are reachable through their chains.
  uint8_t start[kKeySize] = {};
  s = tree.Scan(start, [&](const uint8_t* rec, uint32_t) -> absl::StatusOr<bool> {
    if (rec[leaf_record::kKind] != leaf_record::kLong) return true;
    PageNo p = LoadU32(rec + leaf_record::kLongFirstPage);
    for (uint32_t n = LoadU32(rec + leaf_record::kLongPageCount); n > 0 && p != 0; --n) {
      if (p < page_count) reachable[p] = true;
      ASSIGN_OR_RETURN(PageRef page, reader.Read(p));
      p = LoadU32(page->data() + long_value_layout::kNextPage);
    }
    return true;
  });
  if (!s.ok()) AddError(fc, options, absl::StrCat("long values: ", s.message()));
  auto meta = table.Meta();
  if (!meta.ok()) {
    AddError(fc, options, std::string(meta.status().message()));
    return;
  }
  if (meta->item_count != items || meta->value_bytes != bytes) {
    AddError(fc, options,
             absl::StrFormat("meta page counts %u items of %u bytes; the tree holds "
                             "%u items of %u bytes",
                             meta->item_count, meta->value_bytes, items, bytes));
  }
  SpaceHints hints;
  SpaceMap space(reader, hints);
  uint64_t leaked = 0;
  for (uint64_t p = kFirstDataPage; p < page_count; ++p) {
    auto allocated = space.IsAllocated(static_cast<PageNo>(p));
    if (!allocated.ok()) {
      AddError(fc, options, std::string(allocated.status().message()));
      return;
    }
    if (*allocated && !reachable[p]) {
      leaked++;
      if (leaked <= 5) fc.warnings.push_back(absl::StrFormat("page %u is allocated but unused", p));
    } else if (!*allocated && reachable[p]) {
      AddError(fc, options, absl::StrFormat("page %u is in use but marked free", p));
    }
  }
  if (leaked > 5)
    fc.warnings.push_back(absl::StrFormat("%u pages in all are allocated but unused", leaked));
  absl::StrAppend(&fc.summary, absl::StrFormat(", %u items, %u value bytes, tree height %u", items,
                                               bytes, meta->tree_height));
}

void CheckDatabase(const std::string& path, const CheckOptions& options, FileCheck& fc) {
  fc.kind = "database";
  auto file = File::OpenReadOnly(path);
  if (!file.ok()) {
    AddError(fc, options, std::string(file.status().message()));
    return;
  }
  auto size = file->Size();
  fc.bytes = size.ok() ? *size : 0;
  auto header = ReadDbHeader(*file);
  if (!header.ok()) {
    AddError(fc, options, std::string(header.status().message()));
    return;
  }
  for (int i = 0; i < 2; ++i) {
    if (!header->copy_status[i].ok()) {
      AddError(fc, options,
               absl::StrCat(header->copy_status[i].message(),
                            " (the other copy is intact and was used)"));
    }
  }
  const DbHeader& h = header->header;
  const uint32_t page_size = h.page_size;
  if (fc.bytes % page_size != 0) {
    AddError(fc, options,
             absl::StrFormat("file size %u is not a multiple of the page size %u: the "
                             "last page is cut short (truncated?)",
                             fc.bytes, page_size));
  }
  const uint64_t page_count = fc.bytes / page_size;
  std::vector<bool> zero(page_count, false);
  std::map<PageType, uint64_t> by_type;
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, FreeDeleter> buf(
      static_cast<uint8_t*>(std::aligned_alloc(4096, kReadChunk)));
  const size_t pages_per_chunk = kReadChunk / page_size;
  for (uint64_t first = 2; first < page_count; first += pages_per_chunk) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(pages_per_chunk, page_count - first));
    absl::Status s = file->ReadAt(first * page_size, buf.get(), n * page_size);
    if (!s.ok()) {
      AddError(fc, options, std::string(s.message()));
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* page = buf.get() + i * page_size;
      const PageNo pgno = static_cast<PageNo>(first + i);
      if (LoadU32(page) == 0 && IsZeroPage(page, page_size)) {
        zero[pgno] = true;
        continue;
      }
      absl::Status v = VerifyPage(page, page_size, pgno);
      if (!v.ok()) {
        AddError(fc, options, std::string(v.message()));
      } else {
        by_type[PageTypeOf(page)]++;
      }
    }
  }
  fc.summary =
      absl::StrFormat("%u pages of %u bytes, %s", page_count, page_size, DbStateName(h.state));

  // On a consistent database every page the space map calls allocated must
  // have been written. (While dirty, recovery may still have pages to
  // write, so this is checked only when clean.)
  const bool consistent = h.state != DbState::kDirtyShutdown;
  if (consistent && fc.clean()) {
    auto db = DatabaseFile::Open(path, false);
    if (!db.ok()) {
      AddError(fc, options, std::string(db.status().message()));
      return;
    }
    FilePageReader reader(**db);
    SpaceHints hints;
    SpaceMap space(reader, hints);
    auto meta = reader.Read(kMetaPage);
    const uint32_t maps = meta.ok() ? LoadU32((*meta)->data() + meta_layout::kMapCount) : 0;
    const uint32_t per_map = space_map_layout::PagesPerMap(page_size);
    for (uint32_t k = 0; k < maps; ++k) {
      for (uint64_t p = uint64_t{k} * per_map; p < uint64_t{k + 1} * per_map; ++p) {
        if (p < 2) continue;
        auto allocated = space.IsAllocated(static_cast<PageNo>(p));
        if (!allocated.ok()) {
          AddError(fc, options, std::string(allocated.status().message()));
          break;
        }
        if (!*allocated) continue;
        if (p >= page_count) {
          AddError(fc, options,
                   absl::StrFormat("page %u is allocated but lies past the end of the "
                                   "file (%u pages): the file is truncated",
                                   p, page_count));
          break;
        }
        if (zero[p]) {
          AddError(fc, options,
                   absl::StrFormat("page %u (offset %u) is allocated but was never "
                                   "written (a lost write)",
                                   p, p * page_size));
        }
      }
    }
    if (options.deep && fc.clean()) DeepCheck(**db, page_count, options, fc);
  } else if (options.deep && !consistent) {
    fc.warnings.push_back("not consistent (DirtyShutdown): structure not checked; recover first");
  }
}

struct LogInfo {
  std::string path;
  Generation generation;
  Signature signature;
  Sha256Digest hash;
  bool has_prev_link;
  Sha256Digest prev_link;
};

void CheckLog(const std::string& path, const CheckOptions& options, FileCheck& fc,
              std::vector<LogInfo>& infos) {
  fc.kind = "log";
  auto scan = ScanLogFile(path);
  if (!scan.ok()) {
    AddError(fc, options, std::string(scan.status().message()));
    return;
  }
  fc.bytes = scan->data.size();
  const std::string name = BaseName(path);
  // Closed logs are named <prefix><8 hex digits>.log; anything else is the
  // open log.
  const std::optional<Generation> gen =
      name.size() >= 12 ? ParseLogFileName(name.substr(0, name.size() - 12), name) : std::nullopt;
  const bool is_open = !gen.has_value();
  if (gen) {
    if (*gen != scan->header.generation) {
      AddError(fc, options,
               absl::StrFormat("file name says generation 0x%08X, the header 0x%08X", *gen,
                               scan->header.generation));
    }
  }
  absl::Status s = is_open ? CheckOpenLog(*scan) : CheckClosedLog(*scan);
  if (!s.ok()) AddError(fc, options, std::string(s.message()));
  if (is_open && scan->tail == LogFileScan::Tail::kTorn) {
    fc.warnings.push_back(
        absl::StrCat("torn tail after the last record (a crash mid-write; "
                     "recovery ignores it): ",
                     scan->tail_detail));
  }
  for (const auto& r : scan->records) {
    absl::Status body;
    switch (r.type) {
      case RecordType::kPageImage:
      case RecordType::kPageDelta:
      case RecordType::kPageImageSparse:
        body = CheckPageRecordBody(r, scan->header.page_size);
        break;
      case RecordType::kCommit:
        body = DecodeCommit(r).status();
        break;
      case RecordType::kSeal:
        body = DecodeSeal(r).status();
        break;
      case RecordType::kTerm:
      case RecordType::kStart:
        body = DecodeTerm(r).status();
        break;
    }
    if (!body.ok()) AddError(fc, options, std::string(body.message()));
  }
  fc.summary = absl::StrFormat("generation 0x%08X, %u records%s", scan->header.generation,
                               scan->records.size(), scan->sealed ? ", sealed" : ", open");
  infos.push_back({path, scan->header.generation, scan->header.log_signature, scan->file_hash,
                   scan->header.has_prev_link, scan->header.prev_link});
}

void CheckCheckpoint(const std::string& path, const CheckOptions& options, FileCheck& fc) {
  fc.kind = "checkpoint";
  auto data = ReadFileToString(path);
  if (!data.ok()) {
    AddError(fc, options, std::string(data.status().message()));
    return;
  }
  fc.bytes = data->size();
  auto read = DecodeCheckpointFile(*data, path);
  if (!read.ok()) {
    AddError(fc, options, std::string(read.status().message()));
    return;
  }
  for (int i = 0; i < 2; ++i) {
    if (!read->copy_status[i].ok()) {
      AddError(
          fc, options,
          absl::StrCat(read->copy_status[i].message(), " (the other copy is intact and was used)"));
    }
  }
  fc.summary = absl::StrCat("checkpoint at ", read->checkpoint.position.ToString());
}

absl::StatusOr<std::vector<std::string>> ExpandPaths(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0)
      return absl::NotFoundError(absl::StrCat(p, ": no such file or directory"));
    if (!S_ISDIR(st.st_mode)) {
      out.push_back(p);
      continue;
    }
    ASSIGN_OR_RETURN(auto names, ListDirectory(p));
    for (const auto& n : names) {
      if (n.size() > 4 && (n.substr(n.size() - 4) == ".edb" || n.substr(n.size() - 4) == ".log" ||
                           n.substr(n.size() - 4) == ".chk")) {
        out.push_back(JoinPath(p, n));
      }
    }
  }
  return out;
}

}  // namespace

bool CheckReport::clean() const {
  return std::all_of(files.begin(), files.end(), [](const FileCheck& f) { return f.clean(); });
}

double CheckReport::MegabytesPerSecond() const {
  return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0;
}

absl::StatusOr<CheckReport> CheckFiles(const std::vector<std::string>& paths,
                                       const CheckOptions& options) {
  ASSIGN_OR_RETURN(std::vector<std::string> expanded, ExpandPaths(paths));
  if (expanded.empty()) return absl::InvalidArgumentError("no mailstore files to check");
  CheckReport report;
  std::vector<LogInfo> logs;
  const absl::Time start = absl::Now();
  for (const auto& path : expanded) {
    FileCheck fc;
    fc.path = path;
    const std::string name = BaseName(path);
    if (name.size() > 7 && name.substr(name.size() - 7) == "tmp.log") {
      // A log being created when the process stopped: never holds committed
      // records (they go to <prefix>.log only after the rename).
      fc.kind = "temporary log";
      fc.warnings.push_back(
          "left by an interrupted log creation; holds no transactions and is "
          "removed when the unit next starts");
      report.files.push_back(std::move(fc));
      continue;
    }
    switch (Sniff(path)) {
      case Kind::kDatabase:
        CheckDatabase(path, options, fc);
        break;
      case Kind::kLog:
        CheckLog(path, options, fc, logs);
        break;
      case Kind::kCheckpoint:
        CheckCheckpoint(path, options, fc);
        break;
      case Kind::kUnknown:
        fc.kind = "unknown";
        AddError(fc, options, "not a mailstore database, log or checkpoint file");
        break;
    }
    report.bytes += fc.bytes;
    report.files.push_back(std::move(fc));
  }
  // Link continuity between consecutive generations of one stream.
  std::sort(logs.begin(), logs.end(),
            [](const LogInfo& a, const LogInfo& b) { return a.generation < b.generation; });
  for (size_t i = 1; i < logs.size(); ++i) {
    const LogInfo& prev = logs[i - 1];
    const LogInfo& cur = logs[i];
    if (cur.generation != prev.generation + 1 || cur.signature != prev.signature) continue;
    if (!cur.has_prev_link || cur.prev_link != prev.hash) {
      for (auto& fc : report.files) {
        if (fc.path == cur.path) {
          AddError(fc, options,
                   absl::StrFormat("link hash does not match generation 0x%08X (%s): "
                                   "the streams diverged here",
                                   prev.generation, prev.path));
        }
      }
    }
  }
  report.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return report;
}

std::string FormatCheckReport(const CheckReport& report, bool verbose) {
  std::string out;
  size_t damaged = 0;
  size_t clean_logs = 0;
  std::string first_log, last_log;
  for (const auto& fc : report.files) {
    if (!fc.clean()) damaged++;
    if (!verbose && fc.kind == "log" && fc.clean() && fc.warnings.empty()) {
      if (clean_logs++ == 0) first_log = fc.path;
      last_log = fc.path;
      continue;
    }
    absl::StrAppend(&out, fc.clean() ? "OK       " : "DAMAGED  ", fc.path, "  (", fc.kind,
                    fc.summary.empty() ? "" : ", ", fc.summary, ")\n");
    for (const auto& e : fc.errors) absl::StrAppend(&out, "    error: ", e, "\n");
    if (fc.errors_not_listed > 0) {
      absl::StrAppend(&out, "    ... and ", fc.errors_not_listed, " more errors\n");
    }
    for (const auto& w : fc.warnings) absl::StrAppend(&out, "    warning: ", w, "\n");
  }
  if (clean_logs == 1) {
    absl::StrAppend(&out, "OK       ", first_log, "  (log)\n");
  } else if (clean_logs > 1) {
    absl::StrAppend(&out, "OK       ", clean_logs,
                    " logs, every record and link valid: ", first_log, " ... ", BaseName(last_log),
                    "\n");
  }
  absl::StrAppend(&out,
                  absl::StrFormat("%s: %u file(s), %u damaged; %.1f MB checked in %.3f s "
                                  "(%.0f MB/s)\n",
                                  damaged == 0 ? "clean" : "CORRUPTION FOUND", report.files.size(),
                                  damaged, static_cast<double>(report.bytes) / 1e6, report.seconds,
                                  report.MegabytesPerSecond()));
  return out;
}

}  // namespace dagvault::mailstore
