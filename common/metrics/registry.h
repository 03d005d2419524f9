// Metrics a daemon keeps between scrapes (counters, gauges, histograms with
// labels), and collectors that compute the rest at scrape time from the
// daemon's own state (an RPO age, copies by state). Scrape() writes them
// all in the text format (exposition.h). Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/metrics/exposition.h"

namespace dagvault::metrics {

class Family {
 public:
  Family(std::string name, std::string help) : name_(std::move(name)), help_(std::move(help)) {}
  virtual ~Family() = default;
  virtual void Write(TextWriter& w) = 0;

 protected:
  const std::string name_, help_;
  std::mutex mu_;
};

// Only goes up (Prometheus' rate() handles the reset at a restart).
class Counter : public Family {
 public:
  using Family::Family;
  void Add(const Labels& labels, double n = 1);
  void Write(TextWriter& w) override;

 private:
  std::map<Labels, double> values_;
};

class Gauge : public Family {
 public:
  using Family::Family;
  void Set(const Labels& labels, double value);
  void Write(TextWriter& w) override;

 private:
  std::map<Labels, double> values_;
};

// Cumulative buckets with the given upper bounds (+Inf is added), _sum and
// _count.
class Histogram : public Family {
 public:
  Histogram(std::string name, std::string help, std::vector<double> bounds)
      : Family(std::move(name), std::move(help)), bounds_(std::move(bounds)) {}
  void Observe(const Labels& labels, double value);
  void Write(TextWriter& w) override;

 private:
  struct Series {
    std::vector<uint64_t> buckets;  // not cumulative; one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  const std::vector<double> bounds_;
  std::map<Labels, Series> series_;
};

class Registry {
 public:
  Counter& AddCounter(std::string name, std::string help);
  Gauge& AddGauge(std::string name, std::string help);
  Histogram& AddHistogram(std::string name, std::string help, std::vector<double> bounds);
  // Called at every scrape, in the order added, after the kept families.
  void AddCollector(std::function<void(TextWriter&)> collect);

  // The exposition, or an error naming the first bad name (a bug).
  absl::StatusOr<std::string> Scrape();

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;
  std::vector<std::function<void(TextWriter&)>> collectors_;
};

// Upper bounds for durations in seconds: 5 ms to 1 h.
std::vector<double> DurationBuckets();

}  // namespace dagvault::metrics
