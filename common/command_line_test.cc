#include "common/command_line.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace dagvault {
namespace {

using ::testing::HasSubstr;

ProgramSpec Tool() {
  ProgramSpec p;
  p.name = "tool";
  p.description = "a tool";
  p.global_flags = {{.name = "json", .help = "JSON", .kind = FlagSpec::Kind::kBool}};
  p.commands = {
      {{"backup", "start"},
       "start one",
       {{.name = "unit", .help = "the unit"},
        {.name = "type", .help = "type", .choices = {"full", "incremental"}},
        {.name = "prefer", .help = "nodes", .repeatable = true},
        {.name = "rpo", .help = "rpo", .kind = FlagSpec::Kind::kDuration},
        {.name = "to-generation", .help = "g", .kind = FlagSpec::Kind::kGeneration},
        {.name = "wait", .help = "wait", .kind = FlagSpec::Kind::kBool}}},
      {{"backup", "list"}, "list them", {{.name = "unit", .help = "the unit"}}},
      {{"job", "show"}, "one job", {}, {"ID"}},
  };
  return p;
}

absl::StatusOr<ParsedCommand> Parse(std::vector<std::string> argv, std::string* out = nullptr) {
  std::ostringstream o;
  auto r = ParseCommandLine(Tool(), argv, o);
  if (out != nullptr) *out = o.str();
  return r;
}

TEST(CommandLine, FlagsAreScopedToTheirCommandAndGlobalsGoAnywhere) {
  auto r = Parse({"backup", "start", "--unit", "DB02", "--prefer", "n1", "--prefer=n2", "--wait",
                  "--json", "--to-generation", "0x1A"});
  ASSERT_TRUE(r.ok()) << r.status();
  const CliArgs& a = r->args;
  EXPECT_EQ(a.positional(), (std::vector<std::string>{"backup", "start"}));
  EXPECT_EQ(a.GetOr("unit", ""), "DB02");
  EXPECT_EQ(a.GetAll("prefer"), (std::vector<std::string>{"n1", "n2"}));
  EXPECT_TRUE(a.Has("wait"));
  EXPECT_TRUE(a.Has("json"));
  EXPECT_EQ(*a.GetUint("to-generation", 0), 0x1Au);
  auto shown = Parse({"--json", "job", "show", "J1"});
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_EQ(shown->args.positional(), (std::vector<std::string>{"job", "show", "J1"}));
}

TEST(CommandLine, MistakesAreUsageErrorsThatNameWhatIsWrong) {
  auto unknown = Parse({"backup", "list", "--wait"});  // backup start's flag
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("--wait"));
  EXPECT_THAT(unknown.status().message(), HasSubstr("tool backup list --help"));
  auto choice = Parse({"backup", "start", "--type", "weekly"});
  EXPECT_THAT(choice.status().message(), HasSubstr("--type: weekly not in {full,incremental}"));
  auto twice = Parse({"backup", "start", "--unit", "a", "--unit", "b"});
  EXPECT_FALSE(twice.ok());
  EXPECT_THAT(twice.status().message(), HasSubstr("--unit"));
  auto duration = Parse({"backup", "start", "--rpo", "6x"});
  EXPECT_THAT(duration.status().message(), HasSubstr("\"6x\" is not a duration"));
  auto generation = Parse({"backup", "start", "--to-generation", "0xZZ"});
  EXPECT_THAT(generation.status().message(), HasSubstr("is not a generation"));
  auto missing = Parse({"job", "show"});
  EXPECT_THAT(missing.status().message(), HasSubstr("ID"));
  EXPECT_FALSE(Parse({"restore"}).ok());
  EXPECT_FALSE(Parse({"backup"}).ok());  // a group needs its command
}

TEST(CommandLine, HelpAtEveryLevel) {
  std::string out;
  auto top = Parse({}, &out);
  ASSERT_TRUE(top.ok());
  EXPECT_TRUE(top->help_shown);
  EXPECT_THAT(out, HasSubstr("backup"));
  auto via_word = Parse({"help", "backup", "start"}, &out);
  ASSERT_TRUE(via_word.ok());
  EXPECT_TRUE(via_word->help_shown);
  EXPECT_THAT(out, HasSubstr("--unit"));
  EXPECT_THAT(out, HasSubstr("{full,incremental}"));
  auto via_flag = Parse({"backup", "list", "--help"}, &out);
  ASSERT_TRUE(via_flag.ok());
  EXPECT_THAT(out, HasSubstr("list them"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("--wait")));
}

TEST(CommandLine, JsonErrorsAreOneLineOfJson) {
  const std::string line = JsonErrorLine(absl::NotFoundError("no \"x\""), 1);
  EXPECT_THAT(line, ::testing::StartsWith("{\"error\":{"));
  EXPECT_THAT(line, HasSubstr("\"code\":\"NOT_FOUND\""));
  EXPECT_THAT(line, HasSubstr("\"message\":\"no \\\"x\\\"\""));
  EXPECT_THAT(line, HasSubstr("\"exit_code\":1"));
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

// COMPREPLY for the words typed so far, from the generated script in bash.
std::string Complete(const std::string& script, const std::string& words) {
  const std::string path = ::testing::TempDir() + "/completion.bash";
  std::ofstream(path) << script;
  const std::string command = "bash -c 'source " + path + "; COMP_WORDS=(" + words +
                              "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _tool; echo "
                              "\"${COMPREPLY[*]}\"'";
  FILE* p = popen(command.c_str(), "r");
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  pclose(p);
  return out;
}

TEST(CommandLine, BashCompletesCommandsFlagsAndChoices) {
  const std::string script = BashCompletion(Tool());
  EXPECT_THAT(script, HasSubstr("complete -F _tool tool"));
  EXPECT_EQ(Complete(script, "tool \"\""), "backup job\n");
  EXPECT_EQ(Complete(script, "tool backup \"\""), "list start\n");
  EXPECT_THAT(Complete(script, "tool backup start --"), HasSubstr("--unit"));
  EXPECT_THAT(Complete(script, "tool backup start --"), HasSubstr("--json"));
  EXPECT_EQ(Complete(script, "tool backup start --unit DB02 --type \"\""), "full incremental\n");
  EXPECT_EQ(Complete(script, "tool backup start --unit DB02 --type i"), "incremental\n");
}

}  // namespace
}  // namespace dagvault
