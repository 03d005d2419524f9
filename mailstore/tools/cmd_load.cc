// `mailstore-util load`: a load generator for a running mailstored. It
// puts new items (and optionally reads some back) through the store API
// at a target rate for a duration, and prints what it achieved.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/cli_args.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "dagvault/v1/store.grpc.pb.h"
#include "mailstore/tools/admin_client.h"
#include "mailstore/tools/cli_output.h"
#include "mailstore/tools/size_mix.h"
#include "mailstore/tools/util.h"

namespace dagvault::mailstore {
namespace {

namespace v1 = dagvault::v1;

struct Target {
  std::string unit;
  std::string database;
};

struct LoadSettings {
  std::vector<Target> targets;
  uint64_t mailboxes = 100;
  double rate = 0;  // ops/s over all threads; 0: as fast as possible
  absl::Duration duration = absl::Seconds(10);
  int threads = 8;
  double reads = 0;  // fraction of operations that read an item back
};

struct ThreadResult {
  uint64_t puts = 0, gets = 0, errors = 0, bytes = 0;
  std::vector<double> latencies_ms;
  std::vector<std::string> errors_seen;
};

// The databases of each unit, from the server's status.
absl::StatusOr<std::vector<Target>> ResolveTargets(v1::Admin::Stub& admin,
                                                   const std::vector<std::string>& units,
                                                   const std::string& database) {
  std::vector<Target> targets;
  for (const auto& unit : units) {
    if (!database.empty()) {
      targets.push_back({unit, database});
      continue;
    }
    v1::StatusRequest request;
    request.set_unit(unit);
    v1::StatusResponse status;
    auto context = ClientContext(absl::Seconds(30));
    RETURN_IF_ERROR(FromGrpcStatus(admin.Status(context.get(), request, &status), "Status"));
    if (status.units_size() == 0 || status.units(0).databases_size() == 0) {
      return absl::NotFoundError(absl::StrCat("no unit ", unit, " on node ", status.node()));
    }
    for (const auto& db : status.units(0).databases()) targets.push_back({unit, db});
  }
  return targets;
}

void RunThread(const LoadSettings& settings, const SizeMix& mix, v1::Store::Stub& store, int index,
               absl::Time start, std::atomic<uint64_t>& next_op, ThreadResult& result) {
  std::mt19937_64 rng(absl::ToUnixNanos(start) + static_cast<uint64_t>(index) * 7919);
  // Item ids: a random run tag in the high bits, so runs never collide.
  const uint64_t run_tag = (rng() & 0x7fffffffULL) << 32;
  uint64_t counter = 0;
  std::vector<std::pair<v1::ItemAddress, size_t>> written;  // for reads
  std::string value;
  std::uniform_real_distribution<double> unit_interval(0, 1);
  const absl::Time end = start + settings.duration;
  while (true) {
    const uint64_t op = next_op++;
    if (settings.rate > 0) {
      const absl::Time due = start + absl::Seconds(static_cast<double>(op) / settings.rate);
      if (due >= end) return;
      const absl::Time now = absl::Now();
      if (due > now) absl::SleepFor(due - now);
    }
    if (absl::Now() >= end) return;
    const bool read = !written.empty() && unit_interval(rng) < settings.reads;
    const absl::Time t0 = absl::Now();
    grpc::Status s;
    auto context = ClientContext(absl::Seconds(60));
    if (read) {
      const auto& [address, size] = written[rng() % written.size()];
      v1::GetRequest request;
      *request.mutable_address() = address;
      v1::GetResponse response;
      s = store.Get(context.get(), request, &response);
      if (s.ok() && (!response.found() || response.value().size() != size)) {
        s = grpc::Status(
            grpc::StatusCode::DATA_LOSS,
            absl::StrFormat("item %u/%u read back %s", address.mailbox(), address.item(),
                            response.found() ? "with the wrong size" : "missing"));
      }
      if (s.ok()) result.gets++;
    } else {
      const Target& t = settings.targets[rng() % settings.targets.size()];
      v1::PutRequest request;
      auto* a = request.mutable_address();
      a->set_unit(t.unit);
      a->set_database(t.database);
      a->set_mailbox(1 + rng() % settings.mailboxes);
      a->set_item(run_tag | ++counter);
      FillMailLikeBytes(rng, mix.Pick(rng), &value);
      request.set_value(value);
      v1::PutResponse response;
      s = store.Put(context.get(), request, &response);
      if (s.ok()) {
        result.puts++;
        result.bytes += value.size();
        if (written.size() < 4096) written.emplace_back(*a, value.size());
      }
    }
    result.latencies_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    if (!s.ok()) {
      result.errors++;
      if (result.errors_seen.size() < 3) result.errors_seen.push_back(s.error_message());
    }
  }
}

}  // namespace

int CmdLoad(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = CliArgs::Parse(args, {{"server", "unit", "database", "mailboxes", "size-mix",
                                       "rate", "duration", "threads", "reads"},
                                      {"json"}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), "load");
  auto address = ServerAddress(*parsed);
  if (!address.ok()) return UsageError(err, address.status(), "load");
  std::vector<std::string> units = parsed->GetAll("unit");
  if (units.empty()) {
    return UsageError(err, absl::InvalidArgumentError("--unit UNIT is required (it may repeat)"),
                      "load");
  }
  LoadSettings settings;
  auto mailboxes = parsed->GetUint("mailboxes", 100);
  auto rate = parsed->GetDouble("rate", 0);
  auto duration = parsed->GetDouble("duration", 10);
  auto threads = parsed->GetUint("threads", 8);
  auto reads = parsed->GetDouble("reads", 0);
  auto mix = SizeMix::Parse(parsed->GetOr("size-mix", "4k:70,75k:25,1m:5"));
  for (const absl::Status& s : {mailboxes.status(), rate.status(), duration.status(),
                                threads.status(), reads.status(), mix.status()}) {
    if (!s.ok()) return UsageError(err, s, "load");
  }
  if (*mailboxes == 0 || *threads == 0 || *threads > 256 || *duration <= 0 || *rate < 0 ||
      *reads < 0 || *reads > 1) {
    return UsageError(err,
                      absl::InvalidArgumentError(
                          "--mailboxes and --threads (at most 256) must be positive, --duration "
                          "positive, --rate at least 0, --reads between 0 and 1"),
                      "load");
  }
  settings.mailboxes = *mailboxes;
  settings.rate = *rate;
  settings.duration = absl::Seconds(*duration);
  settings.threads = static_cast<int>(*threads);
  settings.reads = *reads;

  auto channel = ServerChannel(*address);
  auto admin = v1::Admin::NewStub(channel);
  auto targets = ResolveTargets(*admin, units, parsed->GetOr("database", ""));
  if (!targets.ok()) {
    err << "mailstore-util load: " << *address << ": " << targets.status().message() << "\n";
    return kExitFailure;
  }
  settings.targets = *targets;
  auto store = v1::Store::NewStub(channel);

  std::vector<ThreadResult> results(settings.threads);
  std::atomic<uint64_t> next_op{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> workers;
  for (int t = 0; t < settings.threads; ++t) {
    workers.emplace_back(
        [&, t] { RunThread(settings, *mix, *store, t, start, next_op, results[t]); });
  }
  for (auto& w : workers) w.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);

  v1::LoadReport report;
  std::vector<double> latencies;
  for (const auto& r : results) {
    report.set_puts(report.puts() + r.puts);
    report.set_gets(report.gets() + r.gets);
    report.set_errors(report.errors() + r.errors);
    report.set_bytes_written(report.bytes_written() + r.bytes);
    latencies.insert(latencies.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    for (const auto& e : r.errors_seen) {
      if (report.first_errors_size() < 5) report.add_first_errors(e);
    }
  }
  std::sort(latencies.begin(), latencies.end());
  auto percentile = [&](double p) {
    return latencies.empty() ? 0.0
                             : latencies[std::min(latencies.size() - 1,
                                                  static_cast<size_t>(p * latencies.size()))];
  };
  report.set_seconds(seconds);
  report.set_ops_per_second(static_cast<double>(report.puts() + report.gets()) / seconds);
  report.set_mb_per_second(static_cast<double>(report.bytes_written()) / 1e6 / seconds);
  report.set_latency_p50_ms(percentile(0.5));
  report.set_latency_p99_ms(percentile(0.99));
  report.set_latency_max_ms(latencies.empty() ? 0 : latencies.back());
  report.set_target_rate(settings.rate);
  if (parsed->Has("json")) {
    out << ToJson(report) << "\n";
  } else {
    out << absl::StrFormat(
        "load: %u puts, %u gets in %.1f s: %.1f ops/s, %.2f MB/s written (mix %s, %d threads, "
        "target %s)\n"
        "      latency p50 %.2f ms, p99 %.2f ms, max %.2f ms; %u errors\n",
        report.puts(), report.gets(), seconds, report.ops_per_second(), report.mb_per_second(),
        mix->ToString(), settings.threads,
        settings.rate > 0 ? absl::StrFormat("%.0f ops/s", settings.rate) : "unlimited",
        report.latency_p50_ms(), report.latency_p99_ms(), report.latency_max_ms(), report.errors());
    for (const auto& e : report.first_errors()) out << "      error: " << e << "\n";
  }
  return report.errors() == 0 ? kExitOk : kExitFailure;
}

}  // namespace dagvault::mailstore
