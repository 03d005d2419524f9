// Read-only commands: header, check, logs, digest.
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli_args.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "dagvault/v1/mailstore.pb.h"
#include "google/protobuf/util/time_util.h"
#include "mailstore/engine/database_file.h"
#include "mailstore/engine/digest.h"
#include "mailstore/engine/memory_page_access.h"
#include "mailstore/format/edb_header.h"
#include "mailstore/format/log_format.h"
#include "mailstore/tools/admin_client.h"
#include "mailstore/tools/check.h"
#include "mailstore/tools/cli_output.h"
#include "mailstore/tools/util.h"

namespace dagvault::mailstore {
namespace {

using google::protobuf::util::TimeUtil;

void SetTime(int64_t us, google::protobuf::Timestamp* t) {
  *t = TimeUtil::MicrosecondsToTimestamp(us);
}

void SetSignature(const Signature& s, dagvault::v1::SignatureInfo* out) {
  out->set_random_hex(s.RandomHex());
  SetTime(s.created_us, out->mutable_created());
}

void SetBackup(const BackupRecord& b, dagvault::v1::BackupInfo* out) {
  out->set_low_generation(b.low);
  out->set_high_generation(b.high);
  if (b.time_us != 0) SetTime(b.time_us, out->mutable_time());
  out->set_snapshot(b.snapshot);
}

std::string BackupLine(const BackupRecord& b) {
  if (b.time_us == 0 && b.high == 0) return "none";
  return absl::StrFormat("generations 0x%08X-0x%08X at %s%s", b.low, b.high,
                         FormatTimeMicros(b.time_us), b.snapshot ? " (snapshot)" : "");
}

}  // namespace

int CmdHeader(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = CliArgs::Parse(args, {{}, {"json"}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), "header");
  if (parsed->positional().size() != 1) {
    err << "usage: mailstore-util header FILE.edb [--json]\n";
    return kExitUsage;
  }
  const std::string path = parsed->positional()[0];
  auto file = File::OpenReadOnly(path);
  if (!file.ok()) {
    err << "mailstore-util header: " << file.status().message() << "\n";
    return kExitFailure;
  }
  auto read = ReadDbHeader(*file);
  if (!read.ok()) {
    err << "mailstore-util header: " << read.status().message() << "\n";
    return kExitFailure;
  }
  const DbHeader& h = read->header;
  const uint64_t size = file->Size().value_or(0);
  dagvault::v1::EdbHeaderInfo info;
  info.set_file(path);
  info.set_format_version(h.format_version);
  info.set_page_size(h.page_size);
  info.set_page_count(size / h.page_size);
  info.set_database_index(h.db_index);
  info.set_database_name(h.db_name);
  SetSignature(h.db_signature, info.mutable_db_signature());
  SetSignature(h.log_signature, info.mutable_log_signature());
  info.set_state(DbStateName(h.state));
  info.set_log_required_min(h.log_required_min);
  info.set_log_required_max(h.log_required_max);
  info.set_log_committed(h.log_committed);
  info.mutable_consistent_position()->set_generation(h.consistent_lsn.generation);
  info.mutable_consistent_position()->set_offset(h.consistent_lsn.offset);
  if (h.consistent_time_us) SetTime(h.consistent_time_us, info.mutable_consistent_time());
  info.mutable_last_attach_position()->set_generation(h.last_attach_lsn.generation);
  info.mutable_last_attach_position()->set_offset(h.last_attach_lsn.offset);
  if (h.last_attach_time_us) SetTime(h.last_attach_time_us, info.mutable_last_attach_time());
  info.set_dbtime(h.dbtime);
  info.set_header_update_count(h.update_count);
  SetBackup(h.previous_full, info.mutable_previous_full());
  SetBackup(h.previous_incremental, info.mutable_previous_incremental());
  SetBackup(h.previous_differential, info.mutable_previous_differential());
  SetBackup(h.previous_copy, info.mutable_previous_copy());
  info.set_shadow_status(read->ShadowSummary());
  info.mutable_checkpoint()->set_generation(h.checkpoint.generation);
  info.mutable_checkpoint()->set_offset(h.checkpoint.offset);
  if (parsed->Has("json")) {
    out << ToJson(info) << "\n";
  } else {
    auto line = [&](const char* label, const std::string& value) {
      out << absl::StrFormat("%-24s %s\n", label, value);
    };
    line("File:", path);
    line("Format version:", absl::StrCat(h.format_version));
    line("Page size:", absl::StrCat(h.page_size));
    line("Pages:", absl::StrCat(size / h.page_size));
    line("Database:", absl::StrFormat("%s (index %u in its unit)", h.db_name, h.db_index));
    line("DB signature:", absl::StrCat(h.db_signature.RandomHex(), " created ",
                                       FormatTimeMicros(h.db_signature.created_us)));
    line("Log signature:", absl::StrCat(h.log_signature.RandomHex(), " created ",
                                        FormatTimeMicros(h.log_signature.created_us)));
    line("State:", DbStateName(h.state));
    line("Log required:", absl::StrFormat("0x%08X-0x%08X", h.log_required_min, h.log_required_max));
    line("Log committed:", absl::StrFormat("0x%08X", h.log_committed));
    line("Last consistent:",
         absl::StrCat(h.consistent_lsn.ToString(), " at ", FormatTimeMicros(h.consistent_time_us)));
    line("Checkpoint:", h.checkpoint.ToString());
    line("Last attach:", absl::StrCat(h.last_attach_lsn.ToString(), " at ",
                                      FormatTimeMicros(h.last_attach_time_us)));
    line("DB time:", absl::StrCat(h.dbtime));
    line("Header updates:", absl::StrCat(h.update_count));
    line("Previous full:", BackupLine(h.previous_full));
    line("Previous incremental:", BackupLine(h.previous_incremental));
    line("Previous differential:", BackupLine(h.previous_differential));
    line("Previous copy:", BackupLine(h.previous_copy));
    line("Shadow copies:", read->ShadowSummary());
  }
  return kExitOk;
}

int CmdCheck(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = CliArgs::Parse(args, {{"max-errors"}, {"deep", "verbose"}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), "check");
  if (parsed->positional().empty()) {
    err << "usage: mailstore-util check [--deep] [--verbose] FILE|DIR...\n";
    return kExitUsage;
  }
  CheckOptions options;
  options.deep = parsed->Has("deep");
  auto max = parsed->GetUint("max-errors", options.max_errors_per_file);
  if (!max.ok()) return UsageError(err, max.status(), "check");
  options.max_errors_per_file = *max;
  auto report = CheckFiles(parsed->positional(), options);
  if (!report.ok()) {
    err << "mailstore-util check: " << report.status().message() << "\n";
    return kExitUsage;
  }
  out << FormatCheckReport(*report, parsed->Has("verbose"));
  return report->clean() ? kExitOk : kExitFailure;
}

int CmdLogs(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = CliArgs::Parse(args, {{"prefix"}, {"json"}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), "logs");
  if (parsed->positional().size() != 1) {
    err << "usage: mailstore-util logs DIR [--prefix E00] [--json]\n";
    return kExitUsage;
  }
  const std::string dir = parsed->positional()[0];
  std::string prefix = parsed->GetOr("prefix", "");
  if (prefix.empty()) {
    auto prefixes = FindLogPrefixes(dir);
    if (!prefixes.ok()) {
      err << "mailstore-util logs: " << prefixes.status().message() << "\n";
      return kExitFailure;
    }
    if (prefixes->size() != 1) {
      err << "mailstore-util logs: "
          << (prefixes->empty() ? "no log files in " : "several log streams in ") << dir
          << "; name one with --prefix\n";
      return prefixes->empty() ? kExitFailure : kExitUsage;
    }
    prefix = prefixes->front();
  }
  auto listing = ListLogStream(dir, prefix);
  if (!listing.ok()) {
    err << "mailstore-util logs: " << listing.status().message() << "\n";
    return kExitFailure;
  }
  dagvault::v1::LogListing result;
  result.set_dir(dir);
  result.set_prefix(prefix);
  bool healthy = true;
  std::vector<std::pair<std::string, bool>> files;
  for (const auto& [gen, path] : listing->closed) files.push_back({path, false});
  if (listing->current) files.push_back({*listing->current, true});
  std::optional<Sha256Digest> prev_hash;
  std::optional<Generation> prev_gen;
  std::optional<Signature> stream_signature;
  for (const auto& [path, open] : files) {
    auto* info = result.add_logs();
    info->set_file(BaseName(path));
    info->set_open(open);
    auto scan = ScanLogFile(path);
    if (!scan.ok()) {
      info->set_problem(std::string(scan.status().message()));
      info->set_link("unknown");
      healthy = false;
      prev_hash.reset();
      continue;
    }
    const LogHeader& h = scan->header;
    info->set_generation(h.generation);
    info->set_log_signature(h.log_signature.ToString());
    SetTime(h.created_us, info->mutable_created());
    info->set_records(static_cast<uint32_t>(scan->records.size()));
    info->set_sealed(scan->sealed);
    absl::Status s = open ? CheckOpenLog(*scan) : CheckClosedLog(*scan);
    if (!s.ok()) {
      info->set_problem(std::string(s.message()));
      healthy = false;
    }
    if (stream_signature && *stream_signature != h.log_signature) {
      info->set_problem(absl::StrCat(info->problem(), info->problem().empty() ? "" : "; ",
                                     "belongs to another log stream"));
      healthy = false;
    }
    stream_signature = h.log_signature;
    if (prev_gen && prev_hash && *prev_gen + 1 == h.generation) {
      const bool joins = h.has_prev_link && h.prev_link == *prev_hash;
      info->set_link(joins ? "ok" : "broken");
      if (!joins) healthy = false;
    } else {
      info->set_link("first");
    }
    prev_gen = h.generation;
    prev_hash = scan->file_hash;
  }
  for (size_t i = 1; i < static_cast<size_t>(result.logs_size()); ++i) {
    for (uint32_t g = result.logs(i - 1).generation() + 1; g < result.logs(i).generation(); ++g) {
      result.add_missing_generations(g);
      healthy = false;
    }
  }
  result.set_healthy(healthy);
  if (parsed->Has("json")) {
    out << ToJson(result) << "\n";
  } else {
    out << absl::StrFormat("%-18s %-10s %-27s %8s  %-7s %-6s %s\n", "FILE", "GENERATION", "CREATED",
                           "RECORDS", "STATE", "LINK", "SIGNATURE");
    for (const auto& l : result.logs()) {
      out << absl::StrFormat("%-18s 0x%08X %-27s %8u  %-7s %-6s %s\n", l.file(), l.generation(),
                             l.has_created() ? TimeUtil::ToString(l.created()) : "-", l.records(),
                             l.open() ? "open" : (l.sealed() ? "sealed" : "UNSEALED"), l.link(),
                             l.log_signature());
      if (!l.problem().empty()) out << "    problem: " << l.problem() << "\n";
    }
    for (uint32_t g : result.missing_generations()) {
      out << absl::StrFormat("MISSING generation 0x%08X (%s)\n", g, LogFileName(prefix, g));
    }
    out << (healthy ? "stream is continuous: no gaps, every link joins\n"
                    : "stream has problems (see above)\n");
  }
  return healthy ? kExitOk : kExitFailure;
}

int CmdDigest(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = CliArgs::Parse(args, {{"db", "server", "unit", "database"}, {"json"}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), "digest");
  if (parsed->Has("server") || parsed->Has("unit")) return CmdServerDigest(*parsed, out, err);
  std::vector<std::string> dbs = parsed->GetAll("db");
  for (const auto& p : parsed->positional()) dbs.push_back(p);
  if (dbs.empty()) {
    err << "usage: mailstore-util digest --db FILE.edb... [--json]\n";
    return kExitUsage;
  }
  dagvault::v1::DigestReport report;
  for (const auto& path : dbs) {
    auto db = DatabaseFile::Open(path, false);
    if (!db.ok()) {
      err << "mailstore-util digest: " << db.status().message() << "\n";
      return kExitFailure;
    }
    if ((*db)->header().state == DbState::kDirtyShutdown) {
      err << "mailstore-util digest: " << path
          << " is not consistent (DirtyShutdown): run mailstore-util recover first\n";
      return kExitFailure;
    }
    FilePageReader reader(**db);
    ItemTable table(reader, nullptr);
    auto result = DigestItems(table);
    if (!result.ok()) {
      err << "mailstore-util digest: " << path << ": " << result.status().message() << "\n";
      return kExitFailure;
    }
    auto* info = report.add_databases();
    info->set_file(path);
    info->set_sha256(DigestToHex(result->digest));
    info->set_items(result->items);
    info->set_value_bytes(result->value_bytes);
  }
  if (parsed->Has("json")) {
    out << ToJson(report) << "\n";
  } else {
    for (const auto& d : report.databases()) {
      out << d.sha256() << "  " << d.items() << " items  " << d.value_bytes() << " bytes  "
          << d.file() << "\n";
    }
  }
  return kExitOk;
}

}  // namespace dagvault::mailstore
