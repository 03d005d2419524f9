#include "common/metrics/exposition.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/metrics/registry.h"

namespace dagvault::metrics {
namespace {

using ::testing::HasSubstr;

TEST(Exposition, FamiliesWithHelpTypeAndEscapedLabels) {
  TextWriter w;
  w.Family("dagvault_jobs_total", Type::kCounter, "Jobs that ended, by kind and result.");
  w.Sample({{"kind", "backup"}, {"result", "succeeded"}}, 3);
  w.Family("dagvault_unit_rpo_state", Type::kGauge, "1 for the unit's state.\nOne line.");
  w.Sample({{"unit", "DB\"02\\x\ny"}, {"state", "ok"}}, 1);
  w.Sample({}, 0.25);
  ASSERT_TRUE(w.status().ok()) << w.status();
  EXPECT_EQ(w.text(),
            "# HELP dagvault_jobs_total Jobs that ended, by kind and result.\n"
            "# TYPE dagvault_jobs_total counter\n"
            "dagvault_jobs_total{kind=\"backup\",result=\"succeeded\"} 3\n"
            "# HELP dagvault_unit_rpo_state 1 for the unit's state.\\nOne line.\n"
            "# TYPE dagvault_unit_rpo_state gauge\n"
            "dagvault_unit_rpo_state{unit=\"DB\\\"02\\\\x\\ny\",state=\"ok\"} 1\n"
            "dagvault_unit_rpo_state 0.25\n");
}

TEST(Exposition, ValuesAsPrometheusParsesThem) {
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-7), "-7");
  EXPECT_EQ(FormatValue(1e15), "1000000000000000");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(Exposition, BadNamesAndRepeatsAreRefusedByNameAndNotWritten) {
  for (const char* bad : {"", "9lives", "dag-vault", "a b"}) {
    TextWriter w;
    w.Family(bad, Type::kGauge, "x");
    w.Sample({}, 1);
    EXPECT_FALSE(w.status().ok()) << bad;
    EXPECT_EQ(w.text(), "") << bad;
  }
  TextWriter w;
  w.Family("ok_metric", Type::kGauge, "x");
  w.Sample({{"__reserved", "v"}}, 1);
  EXPECT_THAT(std::string(w.status().message()), HasSubstr("label name \"__reserved\""));
  TextWriter twice;
  twice.Family("m", Type::kGauge, "x");
  twice.Family("m", Type::kGauge, "x");
  EXPECT_THAT(std::string(twice.status().message()), HasSubstr("family m appears twice"));
  TextWriter orphan;
  orphan.Sample({}, 1);
  EXPECT_FALSE(orphan.status().ok());
  EXPECT_TRUE(ValidMetricName("dagvault:rate5m"));
  EXPECT_FALSE(ValidLabelName("a:b"));
}

TEST(Registry, CountersGaugesHistogramsAndCollectorsInOneScrape) {
  Registry r;
  Counter& jobs = r.AddCounter("dagvault_jobs_total", "Jobs that ended.");
  Gauge& depth = r.AddGauge("dagvault_scheduler_queue_depth", "Queued backups.");
  Histogram& latency =
      r.AddHistogram("dagvault_catalog_operation_seconds", "Catalog latency.", {0.01, 0.1});
  r.AddCollector([](TextWriter& w) {
    w.Family("dagvault_units", Type::kGauge, "Units known.");
    w.Sample({}, 2);
  });
  jobs.Add({{"kind", "backup"}, {"result", "failed"}});
  jobs.Add({{"kind", "backup"}, {"result", "failed"}});
  jobs.Add({{"kind", "backup"}, {"result", "failed"}}, -5);  // ignored: counters only go up
  depth.Set({}, 4);
  depth.Set({}, 3);
  latency.Observe({{"op", "put"}}, 0.005);
  latency.Observe({{"op", "put"}}, 0.05);
  latency.Observe({{"op", "put"}}, 3);
  auto text = r.Scrape();
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("dagvault_jobs_total{kind=\"backup\",result=\"failed\"} 2\n"));
  EXPECT_THAT(*text, HasSubstr("dagvault_scheduler_queue_depth 3\n"));
  EXPECT_THAT(*text,
              HasSubstr("dagvault_catalog_operation_seconds_bucket{op=\"put\",le=\"0.01\"} 1\n"
                        "dagvault_catalog_operation_seconds_bucket{op=\"put\",le=\"0.1\"} 2\n"
                        "dagvault_catalog_operation_seconds_bucket{op=\"put\",le=\"+Inf\"} 3\n"
                        "dagvault_catalog_operation_seconds_sum{op=\"put\"} 3.055"));
  EXPECT_THAT(*text, HasSubstr("dagvault_catalog_operation_seconds_count{op=\"put\"} 3\n"));
  EXPECT_THAT(*text, HasSubstr("# TYPE dagvault_units gauge\ndagvault_units 2\n"));

  r.AddCollector([](TextWriter& w) { w.Family("dagvault_units", Type::kGauge, "again"); });
  EXPECT_THAT(std::string(r.Scrape().status().message()), HasSubstr("appears twice"));
}

}  // namespace
}  // namespace dagvault::metrics
