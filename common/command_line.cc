#include "common/command_line.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <CLI/CLI.hpp>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/duration_text.h"

namespace dagvault {
namespace {

CLI::Validator DurationValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        auto d = ParseDurationText(text);
        return d.ok() ? std::string() : std::string(d.status().message());
      },
      "DURATION");
}

CLI::Validator GenerationValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint32_t g = 0;
        const bool ok = absl::StartsWithIgnoreCase(text, "0x")
                            ? absl::SimpleHexAtoi(text.substr(2), &g)
                            : absl::SimpleAtoi(text, &g);
        return ok ? std::string()
                  : absl::StrCat("\"", text, "\" is not a generation (decimal, or hex as 0x1A)");
      },
      "GENERATION");
}

void AddFlag(CLI::App* app, const FlagSpec& f) {
  const std::string name = "--" + f.name;
  if (f.kind == FlagSpec::Kind::kBool) {
    // `--force=false` must not mean --force: a value on a flag is an error.
    app->add_flag(name, f.help)->disable_flag_override();
    return;
  }
  CLI::Option* o = app->add_option(name, f.help);
  o->type_name(f.value_name);
  if (f.repeatable) {
    o->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  } else {
    // Given twice is a mistake worth naming, not a silent "last one wins".
    o->multi_option_policy(CLI::MultiOptionPolicy::Throw);
  }
  o->expected(1);
  if (f.required) o->required();
  if (!f.choices.empty()) o->check(CLI::IsMember(f.choices));
  switch (f.kind) {
    case FlagSpec::Kind::kNumber:
      o->check(CLI::NonNegativeNumber);
      break;
    case FlagSpec::Kind::kDuration:
      o->check(DurationValidator());
      break;
    case FlagSpec::Kind::kGeneration:
      o->check(GenerationValidator());
      break;
    default:
      break;
  }
}

// The app tree for `program`; `apps` maps each command path ("backup
// start") to its app.
std::unique_ptr<CLI::App> BuildApp(const ProgramSpec& program,
                                   std::map<std::string, CLI::App*>* apps) {
  auto root = std::make_unique<CLI::App>(program.description, program.name);
  root->footer(program.footer);
  if (program.command_optional) {
    root->require_subcommand(0, 1);
  } else {
    root->require_subcommand(1);
  }
  for (const FlagSpec& f : program.global_flags) AddFlag(root.get(), f);
  (*apps)[""] = root.get();
  for (const CommandSpec& c : program.commands) {
    CLI::App* parent = root.get();
    std::string path;
    for (size_t i = 0; i < c.path.size(); ++i) {
      path = path.empty() ? c.path[i] : absl::StrCat(path, " ", c.path[i]);
      auto it = apps->find(path);
      if (it == apps->end()) {
        CLI::App* sub = parent->add_subcommand(c.path[i], i + 1 == c.path.size() ? c.help : "");
        // Global flags may come after the command too.
        sub->fallthrough();
        it = apps->emplace(path, sub).first;
        if (i + 1 < c.path.size()) sub->require_subcommand(1);
      }
      parent = it->second;
    }
    if (!c.help.empty()) parent->description(c.help);
    for (const FlagSpec& f : c.flags) AddFlag(parent, f);
    for (const std::string& p : c.positionals) {
      const bool optional = absl::EndsWith(p, "?");
      CLI::Option* o = parent->add_option(optional ? p.substr(0, p.size() - 1) : p, p);
      if (!optional) o->required();
    }
  }
  // A group says what it holds.
  for (auto& [path, sub] : *apps) {
    if (path.empty() || !sub->get_description().empty()) continue;
    std::vector<std::string> names;
    for (const CLI::App* child : sub->get_subcommands({})) names.push_back(child->get_name());
    sub->description(absl::StrCat(absl::StrJoin(names, ", "), " (", path, " COMMAND --help)"));
  }
  return root;
}

// Flags and positionals of `app` (and of the subcommands it ran), into
// `positional` and `values`.
void Collect(const CLI::App* app, std::vector<std::string>* positional,
             std::map<std::string, std::vector<std::string>>* values) {
  std::vector<std::string> own_positionals;
  for (const CLI::Option* o : app->get_options()) {
    if (o->count() == 0 || o->get_name() == "--help") continue;
    if (o->get_positional() && o->get_lnames().empty()) {
      for (const auto& r : o->results()) own_positionals.push_back(r);
      continue;
    }
    const std::string name = o->get_lnames().front();
    auto& v = (*values)[name];
    if (o->get_expected_min() == 0) {
      if (v.empty()) v.push_back("");  // a bare flag
    } else {
      for (const auto& r : o->results()) v.push_back(r);
    }
  }
  for (const CLI::App* sub : app->get_subcommands()) {
    positional->push_back(sub->get_name());
    Collect(sub, positional, values);
  }
  positional->insert(positional->end(), own_positionals.begin(), own_positionals.end());
}

}  // namespace

absl::StatusOr<ParsedCommand> ParseCommandLine(const ProgramSpec& program,
                                               const std::vector<std::string>& argv,
                                               std::ostream& out) {
  std::map<std::string, CLI::App*> apps;
  std::unique_ptr<CLI::App> app = BuildApp(program, &apps);
  // `help [COMMAND...]` is `COMMAND... --help`.
  std::vector<std::string> args = argv;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] != "help") continue;
    std::vector<std::string> before(args.begin(), args.begin() + static_cast<long>(i));
    if (apps.count(absl::StrJoin(before, " ")) == 0) break;  // "help" is a value here
    args.erase(args.begin() + static_cast<long>(i));
    args.push_back("--help");
    break;
  }
  if (args.empty() && !program.command_optional) args.push_back("--help");
  // CLI11 takes the arguments in reverse.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app->parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app->help();
    return ParsedCommand{CliArgs::Of({}, {}), true};
  } catch (const CLI::CallForAllHelp&) {
    out << app->help("", CLI::AppFormatMode::All);
    return ParsedCommand{CliArgs::Of({}, {}), true};
  } catch (const CLI::ParseError& e) {
    // Name the command the error is in, and where its help is.
    std::vector<std::string> path;
    for (const CLI::App* a = app.get(); !a->get_subcommands().empty();) {
      a = a->get_subcommands().front();
      path.push_back(a->get_name());
    }
    const std::string command = absl::StrJoin(path, " ");
    return absl::InvalidArgumentError(
        absl::StrCat(command.empty() ? "" : command + ": ", e.what(), " (see ", program.name, " ",
                     command.empty() ? "" : command + " ", "--help)"));
  }
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;
  Collect(app.get(), &positional, &values);
  return ParsedCommand{CliArgs::Of(std::move(positional), std::move(values)), false};
}

std::string JsonErrorLine(const absl::Status& status, int exit_code) {
  google::protobuf::Struct error;
  auto& fields = *error.mutable_fields();
  fields["code"].set_string_value(absl::StatusCodeToString(status.code()));
  fields["message"].set_string_value(std::string(status.message()));
  fields["exit_code"].set_number_value(exit_code);
  google::protobuf::Struct top;
  *(*top.mutable_fields())["error"].mutable_struct_value() = error;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(top, &text);
  return text + "\n";
}

std::string BashCompletion(const ProgramSpec& program) {
  // Words to offer after each command path: its subcommands, or (for a
  // command that runs) its flags and the global ones.
  std::map<std::string, std::set<std::string>> words;
  std::set<std::string> value_flags;
  std::map<std::string, std::vector<std::string>> choices;
  auto note_flag = [&](const FlagSpec& f) {
    if (f.kind != FlagSpec::Kind::kBool) value_flags.insert("--" + f.name);
    if (!f.choices.empty()) choices.emplace("--" + f.name, f.choices);
  };
  std::set<std::string> globals;
  for (const FlagSpec& f : program.global_flags) {
    globals.insert("--" + f.name);
    note_flag(f);
  }
  for (const CommandSpec& c : program.commands) {
    std::string path;
    for (const std::string& part : c.path) {
      words[path].insert(part);
      path = path.empty() ? part : absl::StrCat(path, " ", part);
    }
    auto& leaf = words[path];
    for (const FlagSpec& f : c.flags) {
      leaf.insert("--" + f.name);
      note_flag(f);
    }
    leaf.insert(globals.begin(), globals.end());
    leaf.insert("--help");
  }
  const std::string fn = absl::StrCat("_", absl::StrReplaceAll(program.name, {{"-", "_"}}));
  std::string s = absl::StrCat(
      "# bash completion for ", program.name,
      ", generated from its command table (common/command_line.h).\n", fn, "() {\n",
      "  local cur=${COMP_WORDS[COMP_CWORD]} "
      "prev=${COMP_WORDS[COMP_CWORD-1]}\n",
      "  local path= i w skip=0 candidates=\n", "  local value_flags=\" ",
      absl::StrJoin(value_flags, " "), " \"\n", "  for ((i = 1; i < COMP_CWORD; i++)); do\n",
      "    w=${COMP_WORDS[i]}\n", "    if ((skip)); then skip=0; continue; fi\n",
      "    case $value_flags in *\" $w \"*) skip=1; continue ;; esac\n",
      "    [[ $w == -* ]] && continue\n", "    case \"${path:+$path }$w\" in\n");
  for (const auto& [path, _] : words) {
    if (!path.empty()) absl::StrAppend(&s, "      \"", path, "\") path=\"", path, "\" ;;\n");
  }
  absl::StrAppend(&s, "    esac\n  done\n  case $prev in\n");
  for (const auto& [flag, values] : choices) {
    absl::StrAppend(&s, "    ", flag, ") COMPREPLY=($(compgen -W \"", absl::StrJoin(values, " "),
                    "\" -- \"$cur\")); return ;;\n");
  }
  absl::StrAppend(&s, "  esac\n  case $path in\n");
  for (const auto& [path, options] : words) {
    absl::StrAppend(&s, "    \"", path, "\") candidates=\"", absl::StrJoin(options, " "),
                    "\" ;;\n");
  }
  absl::StrAppend(&s, "  esac\n", "  COMPREPLY=($(compgen -W \"$candidates\" -- \"$cur\"))\n",
                  "}\n", "complete -F ", fn, " ", program.name, "\n");
  return s;
}

}  // namespace dagvault
