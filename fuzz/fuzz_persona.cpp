// Persona files (actors/agents/persona): a workspace's .claude/agents/ may
// be written by anyone, an agent included. The input is a persona file,
// then (after the first NUL byte, if any) a prompt; its last bytes also
// make a tool call's input.
//
// Invariants: parsing never throws; a persona that parses has a valid
// name, a description, and one compiled regex per regex trigger; its tool
// rules read back the same from their text; matching and tool checks never
// throw, and matching only names personas it was given, best first; the
// paths a prompt mentions are never empty.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/agents/persona.hpp"
#include "fuzz/support/fuzz_check.hpp"

namespace {

using namespace troupe;
using namespace troupe::agents;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto nul = input.find('\0');
  const auto file = input.substr(0, nul);
  const auto prompt = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);

  for (const auto& path : mentioned_paths(prompt)) {
    FUZZ_CHECK(!path.empty() && path.size() <= 4096, "a mentioned path is a bounded word");
  }

  auto parsed = parse_persona(file, "fuzz.md");
  if (!parsed) {
    FUZZ_CHECK(parsed.err().message.rfind("fuzz.md:", 0) == 0, "an error names the file");
    return 0;
  }
  const auto& p = *parsed;
  FUZZ_CHECK(!p.name.empty() && p.name.size() <= 64, "a persona has a valid name");
  FUZZ_CHECK(!p.description.empty(), "a persona has a description");
  FUZZ_CHECK(p.compiled.size() == p.triggers.regex.size(), "one compiled regex per trigger");

  // Each rule written back as a one-rule list reads back the same.
  if (p.tools) {
    for (const auto& rule : *p.tools) {
      const auto again = parse_persona(
          "---\nname: x\ndescription: d\ntools: ['" +
              [&] {
                std::string quoted;
                for (char c : rule.text()) {
                  quoted += c == '\'' ? std::string("''") : std::string(1, c);
                }
                return quoted;
              }() +
              "']\n---\n",
          "again.md");
      if (again && again->tools && again->tools->size() == 1) {
        FUZZ_CHECK((*again->tools)[0].tool == rule.tool, "a rule's tool reads back the same");
      }
    }
  }

  const std::vector<persona> all{p};
  const auto choice = match_personas(all, prompt);
  FUZZ_CHECK(choice.candidates.size() <= 1, "candidates come from the personas given");
  FUZZ_CHECK(choice.chosen.has_value() == !choice.candidates.empty(),
             "something is chosen exactly when a trigger matched");
  if (choice.chosen) {
    FUZZ_CHECK(*choice.chosen == p.name, "the chosen persona is one given");
    FUZZ_CHECK(choice.candidates[0].score == static_cast<int>(choice.candidates[0].reasons.size()),
               "the score counts the reasons");
  }

  const std::string tail(prompt.substr(prompt.size() > 64 ? prompt.size() - 64 : 0));
  for (const char* tool : {"Bash", "Read", "Glob", "Other"}) {
    const auto input_json = nlohmann::json{{"command", tail}, {"file_path", tail}, {"path", tail}};
    const auto verdict = check_tool(p, tool, input_json);
    FUZZ_CHECK(verdict.allowed == verdict.reason.empty(), "a refusal says why, an allowance not");
  }
  return 0;
}
