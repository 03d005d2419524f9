#include "node-agent/jobs/item_restore.h"

#include <google/protobuf/util/json_util.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "common/evp.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/item_restore_name.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;

constexpr absl::Duration kPageTimeout = absl::Minutes(5);

// Bytes of items per page: mailstored's default, unless a test sets
// DAGVAULT_ITEM_PAGE_BYTES (to cut a restore short between pages).
uint64_t PageBytes() {
  const char* set = std::getenv("DAGVAULT_ITEM_PAGE_BYTES");
  uint64_t bytes = 0;
  return set != nullptr && absl::SimpleAtoi(set, &bytes) ? bytes : 0;
}

std::unique_ptr<grpc::ClientContext> PageContext() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoSeconds(kPageTimeout));
  return context;
}

}  // namespace

absl::StatusOr<std::string> RemoveJobRecoveryDatabase(v1::Writer::StubInterface& writer,
                                                      const std::string& name) {
  v1::RemoveRecoveryDatabaseRequest request;
  request.set_name(name);
  v1::RemoveRecoveryDatabaseResponse response;
  auto context = PageContext();
  if (grpc::Status s = writer.RemoveRecoveryDatabase(context.get(), request, &response); !s.ok()) {
    return FromGrpcStatus(s, "writer RemoveRecoveryDatabase");
  }
  return response.path();
}

void RemoveLeftoverRecoveryDatabases(v1::Writer::StubInterface& writer, const std::string& unit,
                                     const std::vector<std::string>& leftovers,
                                     const std::string& left_by) {
  auto log = logging::Get("agent");
  for (const std::string& leftover : leftovers) {
    if (absl::StatusOr<std::string> path = RemoveJobRecoveryDatabase(writer, leftover); path.ok()) {
      log->info("unit {}: removed recovery database {}, left by an earlier {}", unit, leftover,
                left_by);
    } else {
      log->warn("unit {}: recovery database {}, left by an earlier {}: {}", unit, leftover, left_by,
                path.status().message());
    }
  }
}

namespace {

void Add(v1::ItemCounts* sum, const v1::ItemCounts& page) {
  sum->set_found(sum->found() + page.found());
  sum->set_copied(sum->copied() + page.copied());
  sum->set_skipped_existing(sum->skipped_existing() + page.skipped_existing());
  sum->set_skipped_identical(sum->skipped_identical() + page.skipped_identical());
  sum->set_overwritten(sum->overwritten() + page.overwritten());
  sum->set_kept_both(sum->kept_both() + page.kept_both());
  sum->set_exported(sum->exported() + page.exported());
  sum->set_bytes(sum->bytes() + page.bytes());
}

absl::StatusOr<ItemStepResult> IntoProduction(
    v1::Writer::StubInterface& writer, const ItemRestoreTarget& target, const v1::ItemRestore& spec,
    const std::atomic<bool>& cancel, const std::function<void(const v1::ItemCounts&)>& progress) {
  ItemStepResult result;
  v1::RestoreItemsRequest request;
  request.set_recovery_database(target.recovery_database);
  request.set_unit(target.unit);
  *request.mutable_selection() = spec.selection();
  request.set_other_mailbox(spec.other_mailbox());
  request.set_target_mailbox(spec.target_mailbox());
  request.set_conflict(spec.conflict());
  request.set_max_bytes(PageBytes());
  while (true) {
    if (cancel) return absl::CancelledError("the item restore was cancelled");
    v1::RestoreItemsResponse page;
    auto context = PageContext();
    if (grpc::Status s = writer.RestoreItems(context.get(), request, &page); !s.ok()) {
      return FromGrpcStatus(s, "writer RestoreItems");
    }
    Add(&result.counts, page.counts());
    result.active_node = page.active_node();
    if (progress) progress(result.counts);
    // Tests kill the agent here, a page written and the job not ended.
    DAGVAULT_CRASH_POINT("agent.items.copy");
    if (page.done()) break;
    *request.mutable_cursor() = page.next();
  }
  result.detail =
      absl::StrCat(DescribeItemCounts(result.counts, false), " into the active copy of ",
                   target.unit, " on ", result.active_node);
  return result;
}

absl::StatusOr<ItemStepResult> Export(v1::Writer::StubInterface& writer,
                                      const ItemRestoreTarget& target, const v1::ItemRestore& spec,
                                      const std::atomic<bool>& cancel,
                                      const std::function<void(const v1::ItemCounts&)>& progress) {
  const std::string& dir = spec.export_dir();
  if (dir.empty() || dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("the export folder must be an absolute path on ",
                                                   target.node, ", not \"", dir, "\""));
  }
  RETURN_IF_ERROR(CreateDirectories(dir, 0700));
  ItemStepResult result;
  v1::ItemExportIndex index;
  index.set_unit(target.unit);
  index.set_node(target.node);
  index.set_recovery_database(target.recovery_database);
  index.set_restore_point_generation(target.restore_point_generation);
  v1::ReadRecoveryItemsRequest request;
  request.set_recovery_database(target.recovery_database);
  *request.mutable_selection() = spec.selection();
  request.set_max_bytes(PageBytes());
  while (true) {
    if (cancel) return absl::CancelledError("the item export was cancelled");
    v1::ReadRecoveryItemsResponse page;
    auto context = PageContext();
    if (grpc::Status s = writer.ReadRecoveryItems(context.get(), request, &page); !s.ok()) {
      return FromGrpcStatus(s, "writer ReadRecoveryItems");
    }
    for (const v1::RestoredItem& item : page.items()) {
      const std::string folder =
          JoinPath(JoinPath(dir, item.database()), absl::StrCat(item.mailbox()));
      RETURN_IF_ERROR(CreateDirectories(folder, 0700));
      const std::string name = absl::StrCat(item.item(), ".item");
      RETURN_IF_ERROR(WriteFileAtomically(JoinPath(folder, name), item.value(), 0600));
      v1::ItemExportIndex::Entry* e = index.add_items();
      e->set_database(item.database());
      e->set_mailbox(item.mailbox());
      e->set_item(item.item());
      e->set_size(item.value().size());
      e->set_sha256(DigestToHex(Sha256::Of(item.value())));
      e->set_file(JoinPath(JoinPath(item.database(), absl::StrCat(item.mailbox())), name));
      result.counts.set_found(result.counts.found() + 1);
      result.counts.set_exported(result.counts.exported() + 1);
      result.counts.set_bytes(result.counts.bytes() + item.value().size());
    }
    if (progress) progress(result.counts);
    if (page.done()) break;
    *request.mutable_cursor() = page.next();
  }
  index.set_exported_us(absl::ToUnixMicros(absl::Now()));
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  if (auto s = google::protobuf::util::MessageToJsonString(index, &json, options); !s.ok()) {
    return absl::InternalError(absl::StrCat("the export's index: ", s.ToString()));
  }
  result.export_index = JoinPath(dir, "index.json");
  RETURN_IF_ERROR(WriteFileAtomically(result.export_index, json, 0600));
  result.detail =
      absl::StrCat(DescribeItemCounts(result.counts, true), " to ", dir, " on ", target.node);
  return result;
}

}  // namespace

std::vector<std::string> JobDatabaseLeftovers(v1::Admin::StubInterface& admin,
                                              const std::string& unit, const std::string& own,
                                              absl::string_view marker) {
  std::vector<std::string> out;
  v1::StatusRequest request;
  request.set_local_only(true);
  v1::StatusResponse status;
  auto context = PageContext();
  if (!admin.Status(context.get(), request, &status).ok()) return out;
  for (const auto& u : status.units()) {
    if (u.recovery_database() && IsJobDatabaseName(u.unit(), marker, unit) && u.unit() != own) {
      out.push_back(u.unit());
    }
  }
  return out;
}

std::string DescribeItemCounts(const v1::ItemCounts& c, bool exported) {
  std::string out = absl::StrCat(c.found(), " item(s) found, ");
  if (exported) {
    absl::StrAppend(&out, c.exported(), " exported");
  } else {
    absl::StrAppend(&out, c.copied(), " copied");
    if (c.skipped_existing() != 0) {
      absl::StrAppend(&out, ", ", c.skipped_existing(),
                      " skipped (the item number holds other mail)");
    }
    if (c.skipped_identical() != 0) {
      absl::StrAppend(&out, ", ", c.skipped_identical(), " already there");
    }
    if (c.overwritten() != 0) absl::StrAppend(&out, ", ", c.overwritten(), " overwritten");
    if (c.kept_both() != 0) absl::StrAppend(&out, ", ", c.kept_both(), " kept beside the existing");
  }
  absl::StrAppend(&out, absl::StrFormat(", %.1f MiB", c.bytes() / 1048576.0));
  return out;
}

namespace {

// Whether the restore point `probe` holds the selection: restored as its
// own Recovery Database, its first page read, removed again.
// `left` says so when its Recovery Database could not be removed.
absl::StatusOr<bool> ProbeHolds(
    v1::Writer::StubInterface& writer, const v1::ItemProbe& probe,
    const v1::ItemSelection& selection,
    const std::function<absl::StatusOr<RestoreJobResult>(const v1::ItemProbe&)>& restore_probe,
    std::string* left) {
  absl::StatusOr<RestoreJobResult> restored = restore_probe(probe);
  absl::StatusOr<bool> holds = false;
  if (!restored.ok()) {
    holds = restored.status();
  } else {
    v1::ReadRecoveryItemsRequest request;
    request.set_recovery_database(probe.recovery_database());
    *request.mutable_selection() = selection;
    request.set_max_bytes(1);
    v1::ReadRecoveryItemsResponse page;
    auto context = PageContext();
    const absl::Status read = FromGrpcStatus(
        writer.ReadRecoveryItems(context.get(), request, &page), "writer ReadRecoveryItems");
    holds = read.ok()                ? absl::StatusOr<bool>(true)
            : absl::IsNotFound(read) ? absl::StatusOr<bool>(false)
                                     : absl::StatusOr<bool>(read);
  }
  if (auto removed = RemoveJobRecoveryDatabase(writer, probe.recovery_database());
      !removed.ok() && !absl::IsNotFound(removed.status())) {
    *left = absl::StrCat("recovery database ", probe.recovery_database(),
                         " could not be removed: ", removed.status().message());
    logging::Get("agent.items")
        ->warn("{} (a look at restore point 0x{:08X})", *left, probe.generation());
  }
  return holds;
}

// What the nearest other restore points say of a selection the restore
// point does not hold: appended to the error.
std::string LookElsewhere(
    v1::Writer::StubInterface& writer, const v1::ItemRestore& spec,
    const std::function<absl::StatusOr<RestoreJobResult>(const v1::ItemProbe&)>& restore_probe,
    const std::atomic<bool>& cancel) {
  std::vector<std::string> looked;
  for (const v1::ItemProbe& probe : spec.probes()) {
    if (cancel) break;
    std::string left;
    absl::StatusOr<bool> holds = ProbeHolds(writer, probe, spec.selection(), restore_probe, &left);
    const std::string point = absl::StrFormat("0x%08X", probe.generation());
    const std::string also = left.empty() ? "" : absl::StrCat("; ", left);
    if (!holds.ok()) {
      looked.push_back(
          absl::StrCat(point, " (could not be looked into: ", holds.status().message(), also, ")"));
      continue;
    }
    if (!left.empty()) looked.push_back(absl::StrCat(point, " (", left, ")"));
    if (*holds) {
      return absl::StrCat(
          "; the nearest restore point that holds ",
          spec.selection().items().empty() ? "the mailbox" : "them", " is generation ", point,
          ", frozen ", FormatUtc(absl::FromUnixMicros(probe.frozen_us())), " (backup ",
          probe.manifests().empty() ? std::string("?") : *probe.manifests().rbegin(),
          "): restore with --to-generation ", point,
          looked.empty() ? std::string()
                         : absl::StrCat(" (also looked at: ", absl::StrJoin(looked, ", "), ")"));
    }
    if (left.empty()) looked.push_back(point);
  }
  if (looked.empty()) return "";
  return absl::StrCat("; the nearest other restore points looked at do not hold ",
                      spec.selection().items().empty() ? "the mailbox" : "them", " (",
                      absl::StrJoin(looked, ", "), ")");
}

}  // namespace

absl::Status RunItemRestore(
    v1::Writer::StubInterface& writer, const ItemRestoreTarget& target, const v1::ItemRestore& spec,
    const std::function<absl::StatusOr<RestoreJobResult>()>& restore_chain,
    const std::function<absl::StatusOr<RestoreJobResult>(const v1::ItemProbe&)>& restore_probe,
    const std::atomic<bool>& cancel, const std::function<void(const v1::ItemCounts&)>& progress,
    v1::ItemRestoreResult* out, RestoreJobResult* restored) {
  auto log = logging::Get("agent.items");
  v1::ItemRestoreResult& result = *out;
  result.Clear();
  auto now_us = [] { return absl::ToUnixMicros(absl::Now()); };
  // Step 3, whatever happened before: the Recovery Database goes.
  auto remove = [&]() -> absl::Status {
    result.add_step_started_us(now_us());
    absl::StatusOr<std::string> path = RemoveJobRecoveryDatabase(writer, target.recovery_database);
    result.add_step_ended_us(now_us());
    if (path.status().code() == absl::StatusCode::kNotFound) {
      // Step 1 failed before the database had a folder: nothing was left.
      result.set_recovery_database_removed(true);
      result.add_step_detail(absl::StrCat("recovery database ", target.recovery_database,
                                          " was never created; nothing to remove"));
      return absl::OkStatus();
    }
    if (!path.ok()) {
      result.add_step_detail(absl::StrCat("not removed: ", path.status().message()));
      return path.status();
    }
    result.set_recovery_database_removed(true);
    result.add_step_detail(
        absl::StrCat("removed recovery database ", target.recovery_database, " (", *path, ")"));
    return absl::OkStatus();
  };
  auto failed_after = [&](int step, const absl::Status& why, const absl::Status& removed) {
    return absl::Status(
        why.code(),
        absl::StrCat(
            "step ", step, ": ", why.message(),
            removed.ok()
                ? absl::StrCat("; recovery database ", target.recovery_database, " removed")
                : absl::StrCat("; and recovery database ", target.recovery_database,
                               " could not be removed: ", removed.message())));
  };
  auto failed = [&](int step, const absl::Status& why) {
    return failed_after(step, why, remove());
  };

  RemoveLeftoverRecoveryDatabases(writer, target.unit, target.leftovers, "item restore");
  result.add_step_started_us(now_us());
  absl::StatusOr<RestoreJobResult> chain = restore_chain();
  result.add_step_ended_us(now_us());
  if (!chain.ok()) {
    result.add_step_detail(std::string(chain.status().message()));
    result.add_step_started_us(0);  // step 2 never ran
    result.add_step_ended_us(0);
    result.add_step_detail("");
    return failed(1, chain.status());
  }
  *restored = *chain;
  result.add_step_detail(absl::StrFormat(
      "restored the chain as recovery database %s on %s, replayed through generation 0x%08X",
      target.recovery_database, target.node, chain->last_generation));
  ItemRestoreTarget mounted = target;
  mounted.restore_point_generation = chain->last_generation;

  result.add_step_started_us(now_us());
  // The counts so far go with a failure too: pages already written stay.
  absl::StatusOr<ItemStepResult> step =
      RunItemStep(writer, mounted, spec, cancel, [&](const v1::ItemCounts& c) {
        *result.mutable_counts() = c;
        if (progress) progress(c);
      });
  result.add_step_ended_us(now_us());
  if (!step.ok()) {
    const absl::Status& why = step.status();
    result.add_step_detail(std::string(why.message()));
    // The first page's check found the selection not at this restore point
    // (mailstored names its Recovery Database so): not a Recovery Database
    // gone, a unit or database missing, or a later page's trouble.
    const bool not_here =
        absl::IsNotFound(why) && result.counts().found() == 0 &&
        absl::StrContains(why.message(), absl::StrCat("at this restore point (recovery database ",
                                                      target.recovery_database));
    if (!not_here || spec.probes().empty() || !restore_probe) return failed(2, why);
    // Where is it, then? This restore point's Recovery Database goes first:
    // each look restores another one.
    const absl::Status removed = remove();
    const std::string elsewhere = LookElsewhere(writer, spec, restore_probe, cancel);
    const absl::Status looked =
        cancel ? absl::CancelledError(absl::StrCat(
                     why.message(), elsewhere,
                     "; the item restore was cancelled while looking at other restore points"))
               : absl::Status(why.code(), absl::StrCat(why.message(), elsewhere));
    result.set_step_detail(1, std::string(looked.message()));
    return failed_after(2, looked, removed);
  }
  *result.mutable_counts() = step->counts;
  result.set_export_index(step->export_index);
  result.set_active_node(step->active_node);
  result.add_step_detail(step->detail);
  log->info("unit {}: {}", target.unit, step->detail);
  if (absl::Status removed = remove(); !removed.ok()) {
    log->warn("unit {}: recovery database {} could not be removed: {}", target.unit,
              target.recovery_database, removed.message());
  }
  return absl::OkStatus();
}

absl::StatusOr<ItemStepResult> RunItemStep(
    v1::Writer::StubInterface& writer, const ItemRestoreTarget& target, const v1::ItemRestore& spec,
    const std::atomic<bool>& cancel, const std::function<void(const v1::ItemCounts&)>& progress) {
  if (spec.into_production() == !spec.export_dir().empty()) {
    return absl::InvalidArgumentError(
        "an item restore goes either into production or to an export folder");
  }
  return spec.into_production() ? IntoProduction(writer, target, spec, cancel, progress)
                                : Export(writer, target, spec, cancel, progress);
}

}  // namespace dagvault::agent
