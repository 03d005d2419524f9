#include "common/metrics/registry.h"

namespace dagvault::metrics {

void Counter::Add(const Labels& labels, double n) {
  if (n < 0) return;  // a counter never goes down
  std::lock_guard<std::mutex> l(mu_);
  values_[labels] += n;
}

void Counter::Write(TextWriter& w) {
  std::lock_guard<std::mutex> l(mu_);
  w.Family(name_, Type::kCounter, help_);
  for (const auto& [labels, v] : values_) w.Sample(labels, v);
}

void Gauge::Set(const Labels& labels, double value) {
  std::lock_guard<std::mutex> l(mu_);
  values_[labels] = value;
}

void Gauge::Write(TextWriter& w) {
  std::lock_guard<std::mutex> l(mu_);
  w.Family(name_, Type::kGauge, help_);
  for (const auto& [labels, v] : values_) w.Sample(labels, v);
}

void Histogram::Observe(const Labels& labels, double value) {
  std::lock_guard<std::mutex> l(mu_);
  Series& s = series_[labels];
  if (s.buckets.empty()) s.buckets.assign(bounds_.size() + 1, 0);
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++s.buckets[i];
  s.sum += value;
  ++s.count;
}

void Histogram::Write(TextWriter& w) {
  std::lock_guard<std::mutex> l(mu_);
  w.Family(name_, Type::kHistogram, help_);
  for (const auto& [labels, s] : series_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += s.buckets[i];
      Labels with = labels;
      with.emplace_back("le", i < bounds_.size() ? FormatValue(bounds_[i]) : "+Inf");
      w.Sample(with, static_cast<double>(cumulative), "_bucket");
    }
    w.Sample(labels, s.sum, "_sum");
    w.Sample(labels, static_cast<double>(s.count), "_count");
  }
}

Counter& Registry::AddCounter(std::string name, std::string help) {
  std::lock_guard<std::mutex> l(mu_);
  families_.push_back(std::make_unique<Counter>(std::move(name), std::move(help)));
  return static_cast<Counter&>(*families_.back());
}

Gauge& Registry::AddGauge(std::string name, std::string help) {
  std::lock_guard<std::mutex> l(mu_);
  families_.push_back(std::make_unique<Gauge>(std::move(name), std::move(help)));
  return static_cast<Gauge&>(*families_.back());
}

Histogram& Registry::AddHistogram(std::string name, std::string help, std::vector<double> bounds) {
  std::lock_guard<std::mutex> l(mu_);
  families_.push_back(
      std::make_unique<Histogram>(std::move(name), std::move(help), std::move(bounds)));
  return static_cast<Histogram&>(*families_.back());
}

void Registry::AddCollector(std::function<void(TextWriter&)> collect) {
  std::lock_guard<std::mutex> l(mu_);
  collectors_.push_back(std::move(collect));
}

absl::StatusOr<std::string> Registry::Scrape() {
  std::lock_guard<std::mutex> l(mu_);
  TextWriter w;
  for (auto& f : families_) f->Write(w);
  for (auto& c : collectors_) c(w);
  if (!w.status().ok()) return w.status();
  return w.text();
}

std::vector<double> DurationBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};
}

}  // namespace dagvault::metrics
