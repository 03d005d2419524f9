#include "common/cli_args.h"

#include "gtest/gtest.h"

namespace dagvault {
namespace {

const CliArgs::Spec kSpec{{"db", "to-generation"}, {"json", "deep"}};

TEST(CliArgs, ParsesFlagsValuesAndPositionals) {
  auto a = CliArgs::Parse({"--db", "a.edb", "--db=b.edb", "x", "--json", "--to-generation", "0x1A"},
                          kSpec);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->GetAll("db"), (std::vector<std::string>{"a.edb", "b.edb"}));
  EXPECT_EQ(a->positional(), std::vector<std::string>{"x"});
  EXPECT_TRUE(a->Has("json"));
  EXPECT_FALSE(a->Has("deep"));
  EXPECT_EQ(*a->GetUint("to-generation", 0), 0x1Au);
}

TEST(CliArgs, UnknownFlagListsTheKnownOnes) {
  auto a = CliArgs::Parse({"--jsn"}, kSpec);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("unknown flag --jsn"), std::string::npos);
  EXPECT_NE(a.status().message().find("--json"), std::string::npos);
}

TEST(CliArgs, MissingValueAndBadNumberAreNamed) {
  EXPECT_FALSE(CliArgs::Parse({"--db"}, kSpec).ok());
  auto a = CliArgs::Parse({"--to-generation", "twelve"}, kSpec);
  ASSERT_TRUE(a.ok());
  auto g = a->GetUint("to-generation", 0);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("--to-generation"), std::string::npos);
}

}  // namespace
}  // namespace dagvault
