// Hook settings and hook output (actors/agents/hooks): a workspace's
// .claude/settings.json is anyone's to write, and a hook prints whatever it
// likes. The input's first byte is the hook's exit code (mod 4: 0, 1, 2, or
// killed), its second the event; the rest, split at the first NUL, is a
// settings document and then the hook's stdout (also used as stderr and as
// the tool name the matchers test).
//
// Invariants: reading settings never throws and reports every entry it
// skips; hooks_for only returns commands that were read; interpret never
// throws, and a refusal (deny, block, stop) always says why; a fail-closed
// hook never lets a failure through; combine keeps the strongest verdict.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/agents/hooks.hpp"
#include "fuzz/support/fuzz_check.hpp"

namespace {

using namespace troupe;
using namespace troupe::agents;

constexpr hook_event events[] = {hook_event::session_start, hook_event::user_prompt_submit,
                                 hook_event::pre_tool_use,  hook_event::post_tool_use,
                                 hook_event::pre_compact,   hook_event::stop,
                                 hook_event::subagent_stop, hook_event::session_end};

bool refuses(hook_verdict v) {
  return v == hook_verdict::deny || v == hook_verdict::block || v == hook_verdict::stop;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) {
    return 0;
  }
  const auto e = events[data[1] % std::size(events)];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  const auto nul = rest.find('\0');
  const auto settings_text = rest.substr(0, nul);
  const auto output = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);

  hook_settings settings;
  const auto doc = nlohmann::json::parse(settings_text, nullptr, false);
  if (!doc.is_discarded()) {
    add_hook_settings(settings, doc, "fuzz.json");
    size_t read = 0;
    for (const auto& [event, matchers] : settings.by_event) {
      for (const auto& m : matchers) {
        read += m.hooks.size();
      }
    }
    const auto chosen = hooks_for(settings, e, output.substr(0, 64));
    FUZZ_CHECK(chosen.size() <= read, "hooks_for returns only hooks that were read");
    for (const auto& h : chosen) {
      FUZZ_CHECK(!h.command.empty(), "a hook has a command");
      FUZZ_CHECK(h.timeout.count() > 0 && h.timeout <= hook_timeout_max,
                 "a hook's timeout is within bounds");
    }
  }

  hook_run run;
  switch (data[0] % 4) {
    case 0:
      run.exit_code = 0;
      break;
    case 1:
      run.exit_code = 1;
      break;
    case 2:
      run.exit_code = 2;
      break;
    default:
      run.exit_code = -9;
      run.signalled = true;
      break;
  }
  run.out = std::string(output);
  run.err = std::string(output.substr(0, 256));
  const auto open = interpret(e, run, false);
  const auto closed = interpret(e, run, true);
  for (const auto& d : {open, closed}) {
    FUZZ_CHECK(!refuses(d.verdict) || !d.reason.empty(), "a refusal says why");
  }
  if (run.signalled || run.exit_code == 1) {
    FUZZ_CHECK(closed.verdict == hook_verdict::block, "a fail-closed hook's failure blocks");
    FUZZ_CHECK(open.verdict == hook_verdict::proceed && !open.error.empty(),
               "a failure of an ordinary hook is a logged error");
  }
  if (run.exit_code == 2) {
    FUZZ_CHECK(open.verdict == hook_verdict::block, "exit 2 blocks");
  }
  const auto both = combine({open, closed});
  FUZZ_CHECK(both.verdict == closed.verdict || both.verdict == open.verdict,
             "combine keeps one of the verdicts");
  FUZZ_CHECK(!refuses(open.verdict) || refuses(both.verdict), "combine keeps a refusal");
  return 0;
}
