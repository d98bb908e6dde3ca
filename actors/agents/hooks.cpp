#include "actors/agents/hooks.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include <re2/re2.h>

extern char** environ;

namespace troupe::agents {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

constexpr std::array<std::pair<hook_event, std::string_view>, 8> event_names{{
    {hook_event::session_start, "SessionStart"},
    {hook_event::user_prompt_submit, "UserPromptSubmit"},
    {hook_event::pre_tool_use, "PreToolUse"},
    {hook_event::post_tool_use, "PostToolUse"},
    {hook_event::pre_compact, "PreCompact"},
    {hook_event::stop, "Stop"},
    {hook_event::subagent_stop, "SubagentStop"},
    {hook_event::session_end, "SessionEnd"},
}};

/// Events whose matchers select hooks (the others run them all).
bool has_matchers(hook_event e) {
  return e == hook_event::pre_tool_use || e == hook_event::post_tool_use ||
         e == hook_event::pre_compact || e == hook_event::session_start;
}

std::string trimmed(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(first, last - first + 1));
}

std::optional<hook_command> read_command(const json& h, const std::string& where,
                                         std::vector<std::string>& problems) {
  if (!h.is_object()) {
    problems.push_back(where + ": a hook is an object");
    return std::nullopt;
  }
  const auto type = h.find("type");
  if (type == h.end() || !type->is_string() || *type != "command") {
    problems.push_back(where + ": only \"type\": \"command\" hooks run here");
    return std::nullopt;
  }
  const auto command = h.find("command");
  if (command == h.end() || !command->is_string() || trimmed(command->get<std::string>()).empty()) {
    problems.push_back(where + ".command: a non-empty string");
    return std::nullopt;
  }
  hook_command out;
  out.command = command->get<std::string>();
  if (const auto timeout = h.find("timeout"); timeout != h.end() && !timeout->is_null()) {
    if (!timeout->is_number() || timeout->get<double>() <= 0) {
      problems.push_back(where + ".timeout: seconds, more than 0");
      return std::nullopt;
    }
    const double seconds = std::min(timeout->get<double>(), double(hook_timeout_max.count()));
    if (timeout->get<double>() > double(hook_timeout_max.count())) {
      problems.push_back(where + ".timeout: at most " + std::to_string(hook_timeout_max.count()) +
                         " s; " + std::to_string(hook_timeout_max.count()) + " s it is");
    }
    // At least a millisecond: a tiny fraction of a second is still a bound.
    out.timeout =
        std::chrono::milliseconds(std::max<int64_t>(1, static_cast<int64_t>(seconds * 1000)));
  }
  if (const auto closed = h.find("failClosed"); closed != h.end() && !closed->is_null()) {
    if (!closed->is_boolean()) {
      problems.push_back(where + ".failClosed: true or false");
      return std::nullopt;
    }
    out.fail_closed = closed->get<bool>();
  }
  return out;
}

void set_nonblocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/// Writes to a pipe whose reader may be gone without a SIGPIPE ending the
/// process: the signal is blocked on this thread and a pending one taken
/// back, whatever the process's disposition.
ssize_t write_quietly(int fd, const char* data, size_t size) {
  sigset_t pipe_only;
  sigset_t before;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &before);
  const auto n = ::write(fd, data, size);
  const int saved = errno;
  if (n < 0 && saved == EPIPE) {
    const timespec zero{0, 0};
    sigtimedwait(&pipe_only, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  errno = saved;
  return n;
}

/// Reads what is there; false at end of file or on an error.
bool drain(int fd, std::string& into) {
  char buf[16384];
  for (;;) {
    const auto n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      const auto room = hook_output_bytes_max - std::min(into.size(), hook_output_bytes_max);
      into.append(buf, std::min(static_cast<size_t>(n), room));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      return true;
    }
    return false;
  }
}

std::string command_label(const std::string& command) {
  constexpr size_t shown = 80;
  return command.size() <= shown ? command : command.substr(0, shown) + "...";
}

int rank(hook_verdict v) {
  switch (v) {
    case hook_verdict::stop:
      return 5;
    case hook_verdict::block:
      return 4;
    case hook_verdict::deny:
      return 3;
    case hook_verdict::ask:
      return 2;
    case hook_verdict::allow:
      return 1;
    case hook_verdict::proceed:
      return 0;
  }
  return 0;
}

void append_line(std::string& to, const std::string& text) {
  if (!text.empty()) {
    to += (to.empty() ? "" : "\n") + text;
  }
}

}  // namespace

std::string_view to_string(hook_event e) {
  for (const auto& [event, name] : event_names) {
    if (event == e) {
      return name;
    }
  }
  return "?";
}

std::optional<hook_event> hook_event_named(std::string_view name) {
  for (const auto& [event, n] : event_names) {
    if (n == name) {
      return event;
    }
  }
  return std::nullopt;
}

std::string_view to_string(hook_verdict v) {
  switch (v) {
    case hook_verdict::proceed:
      return "proceed";
    case hook_verdict::allow:
      return "allow";
    case hook_verdict::deny:
      return "deny";
    case hook_verdict::ask:
      return "ask";
    case hook_verdict::block:
      return "block";
    case hook_verdict::stop:
      return "stop";
  }
  return "?";
}

void add_hook_settings(hook_settings& into, const json& settings, const std::string& source) {
  if (!settings.is_object()) {
    into.problems.push_back(source + ": not a JSON object");
    return;
  }
  const auto hooks = settings.find("hooks");
  if (hooks == settings.end() || hooks->is_null()) {
    return;
  }
  if (!hooks->is_object()) {
    into.problems.push_back(source + ": hooks: an object of events");
    return;
  }
  for (const auto& [name, matchers] : hooks->items()) {
    const auto where = source + ": hooks." + name;
    const auto event = hook_event_named(name);
    if (!event) {
      into.problems.push_back(where + ": not an event troupe runs");
      continue;
    }
    if (!matchers.is_array()) {
      into.problems.push_back(where + ": a list of matchers");
      continue;
    }
    for (size_t i = 0; i < matchers.size(); ++i) {
      const auto& m = matchers[i];
      const auto at = where + "[" + std::to_string(i) + "]";
      if (!m.is_object()) {
        into.problems.push_back(at + ": a matcher is an object");
        continue;
      }
      hook_matcher matcher;
      if (const auto p = m.find("matcher"); p != m.end() && !p->is_null()) {
        if (!p->is_string()) {
          into.problems.push_back(at + ".matcher: a string");
          continue;
        }
        matcher.pattern = p->get<std::string>();
      }
      if (!matcher.pattern.empty() && matcher.pattern != "*") {
        RE2::Options options;
        options.set_log_errors(false);
        auto re = std::make_shared<const RE2>(matcher.pattern, options);
        if (!re->ok()) {
          into.problems.push_back(at + ".matcher: '" + matcher.pattern + "': " + re->error());
          continue;
        }
        matcher.re = std::move(re);
      }
      const auto list = m.find("hooks");
      if (list == m.end() || !list->is_array()) {
        into.problems.push_back(at + ".hooks: a list of hooks");
        continue;
      }
      for (size_t j = 0; j < list->size(); ++j) {
        if (auto cmd =
                read_command((*list)[j], at + ".hooks[" + std::to_string(j) + "]", into.problems)) {
          cmd->source = source;
          matcher.hooks.push_back(std::move(*cmd));
        }
      }
      into.by_event[*event].push_back(std::move(matcher));
    }
  }
}

void add_settings_file(hook_settings& into, const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    into.problems.push_back(path.string() + ": not a readable file");
    return;
  }
  if (fs::file_size(path, ec) > hook_output_bytes_max) {
    into.problems.push_back(path.string() + ": larger than " +
                            std::to_string(hook_output_bytes_max) + " bytes");
    return;
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  auto doc = json::parse(text.str(), nullptr, false);
  if (doc.is_discarded()) {
    into.problems.push_back(path.string() + ": not valid JSON");
    return;
  }
  add_hook_settings(into, doc, path.string());
}

hook_settings load_workspace_hooks(const fs::path& workspace, hook_settings base) {
  for (const char* name : {"settings.json", "settings.local.json"}) {
    const auto path = workspace / ".claude" / name;
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) {
      add_settings_file(base, path);
    }
  }
  return base;
}

std::vector<hook_command> hooks_for(const hook_settings& settings, hook_event e,
                                    std::string_view subject) {
  std::vector<hook_command> out;
  const auto it = settings.by_event.find(e);
  if (it == settings.by_event.end()) {
    return out;
  }
  for (const auto& m : it->second) {
    const bool all = !has_matchers(e) || !m.re;
    if (all || RE2::FullMatch(re2::StringPiece(subject.data(), subject.size()), *m.re)) {
      out.insert(out.end(), m.hooks.begin(), m.hooks.end());
    }
  }
  return out;
}

hook_run run_hook(const hook_command& cmd, std::string_view input, const std::string& cwd,
                  const std::string& project_dir) {
  hook_run run;
  const auto started = clock_type::now();
  auto finish = [&] {
    run.took = std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - started);
    return run;
  };
  int in_pipe[2] = {-1, -1};
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  auto close_all = [&] {
    for (int* p : {in_pipe, out_pipe, err_pipe}) {
      for (int i = 0; i < 2; ++i) {
        if (p[i] >= 0) {
          ::close(p[i]);
          p[i] = -1;
        }
      }
    }
  };
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0) {
    run.failed_to_start = true;
    run.out = std::string("cannot make pipes: ") + std::strerror(errno);
    close_all();
    return finish();
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // A group of its own (killed whole at the timeout), default signal
  // handling and no signal blocked, whatever the node does with them.
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);

  std::vector<std::string> env_text;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::string_view(*e).rfind("CLAUDE_PROJECT_DIR=", 0) != 0) {
      env_text.emplace_back(*e);
    }
  }
  env_text.push_back("CLAUDE_PROJECT_DIR=" + project_dir);
  std::vector<char*> envp;
  for (auto& e : env_text) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  std::string shell = "/bin/sh";
  std::string dash_c = "-c";
  std::string command = cmd.command;
  std::array<char*, 4> argv{shell.data(), dash_c.data(), command.data(), nullptr};

  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, shell.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  in_pipe[0] = out_pipe[1] = err_pipe[1] = -1;
  if (spawned != 0) {
    run.failed_to_start = true;
    run.out = "cannot start '" + command_label(cmd.command) + "' in " + cwd + ": " +
              std::strerror(spawned);
    close_all();
    return finish();
  }
  const int exit_fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  set_nonblocking(in_pipe[1]);
  set_nonblocking(out_pipe[0]);
  set_nonblocking(err_pipe[0]);

  const auto deadline = started + cmd.timeout;
  size_t written = 0;
  bool out_open = true;
  bool err_open = true;
  bool exited = false;
  if (input.empty()) {
    ::close(in_pipe[1]);
    in_pipe[1] = -1;
  }
  while (out_open || err_open || (!exited && exit_fd >= 0)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0) {
      run.timed_out = true;
      break;
    }
    std::array<pollfd, 4> fds{};
    nfds_t n = 0;
    auto watch = [&](int fd, short events) { fds[n++] = pollfd{fd, events, 0}; };
    if (in_pipe[1] >= 0) {
      watch(in_pipe[1], POLLOUT);
    }
    if (out_open) {
      watch(out_pipe[0], POLLIN);
    }
    if (err_open) {
      watch(err_pipe[0], POLLIN);
    }
    if (!exited && exit_fd >= 0) {
      watch(exit_fd, POLLIN);
    }
    const int ready =
        ::poll(fds.data(), n, static_cast<int>(std::min<int64_t>(left.count(), 60000)));
    if (ready < 0 && errno != EINTR) {
      break;
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) {
        continue;
      }
      if (fds[i].fd == in_pipe[1]) {
        const auto wrote =
            write_quietly(in_pipe[1], input.data() + written, input.size() - written);
        if (wrote > 0) {
          written += static_cast<size_t>(wrote);
        }
        if ((wrote < 0 && errno != EAGAIN) || written == input.size()) {
          ::close(in_pipe[1]);  // all of it, or the hook stopped reading
          in_pipe[1] = -1;
        }
      } else if (fds[i].fd == out_pipe[0]) {
        out_open = drain(out_pipe[0], run.out);
      } else if (fds[i].fd == err_pipe[0]) {
        err_open = drain(err_pipe[0], run.err);
      } else if (fds[i].fd == exit_fd) {
        exited = true;
      }
    }
    if (exited) {
      // What the hook wrote before it ended; a child it left behind holding
      // the pipes does not keep the agent waiting.
      if (out_open) {
        drain(out_pipe[0], run.out);
      }
      if (err_open) {
        drain(err_pipe[0], run.err);
      }
      break;
    }
  }
  int status = 0;
  if (run.timed_out) {
    ::kill(-pid, SIGKILL);
  }
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (exit_fd >= 0) {
    ::close(exit_fd);
  }
  close_all();
  if (WIFEXITED(status)) {
    run.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    run.signalled = !run.timed_out;
    run.exit_code = -WTERMSIG(status);
  }
  return finish();
}

hook_decision interpret(hook_event e, const hook_run& run, bool fail_closed) {
  hook_decision d;
  auto failure = [&](std::string why) {
    if (fail_closed) {
      d.verdict = hook_verdict::block;
      d.reason = "a fail-closed hook failed: " + why;
    } else {
      d.error = std::move(why);
    }
    return d;
  };
  if (run.failed_to_start) {
    return failure(run.out);
  }
  if (run.timed_out) {
    return failure("timed out after " + std::to_string(run.took.count() / 1000) + " ms");
  }
  if (run.signalled) {
    return failure("killed by signal " + std::to_string(-run.exit_code));
  }
  if (run.exit_code == 2) {
    d.verdict = hook_verdict::block;
    d.reason = trimmed(run.err);
    if (d.reason.empty()) {
      d.reason = "blocked by a " + std::string(to_string(e)) + " hook";
    }
    return d;
  }
  if (run.exit_code != 0) {
    auto why = "exited with status " + std::to_string(run.exit_code);
    if (const auto err = trimmed(run.err); !err.empty()) {
      why += ": " + err;
    }
    return failure(std::move(why));
  }
  const auto out = trimmed(run.out);
  if (out.empty()) {
    return d;
  }
  if (out.front() != '{') {
    // Plain text: context for the model where Claude Code adds it.
    if (e == hook_event::user_prompt_submit || e == hook_event::session_start) {
      d.additional_context = out;
    }
    return d;
  }
  const auto doc = json::parse(out, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return failure("printed output that is not a JSON object");
  }
  auto text = [&](const json& o, const char* key) {
    const auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (const auto go_on = doc.find("continue"); go_on != doc.end() && *go_on == false) {
    d.verdict = hook_verdict::stop;
    d.reason = text(doc, "stopReason");
    if (d.reason.empty()) {
      d.reason = "stopped by a " + std::string(to_string(e)) + " hook";
    }
    return d;
  }
  const auto decision = text(doc, "decision");
  if (decision == "block") {
    d.verdict = e == hook_event::pre_tool_use ? hook_verdict::deny : hook_verdict::block;
    d.reason = text(doc, "reason");
  } else if (decision == "approve" && e == hook_event::pre_tool_use) {
    d.verdict = hook_verdict::allow;
    d.reason = text(doc, "reason");
  }
  if (const auto specific = doc.find("hookSpecificOutput");
      specific != doc.end() && specific->is_object()) {
    d.additional_context = text(*specific, "additionalContext");
    if (e == hook_event::pre_tool_use) {
      const auto permission = text(*specific, "permissionDecision");
      const auto reason = text(*specific, "permissionDecisionReason");
      if (permission == "allow" || permission == "deny" || permission == "ask") {
        d.verdict = permission == "allow"  ? hook_verdict::allow
                    : permission == "deny" ? hook_verdict::deny
                                           : hook_verdict::ask;
        d.reason = reason;
      } else if (!permission.empty()) {
        d.error = "permissionDecision '" + permission + "' is not allow, deny or ask";
      }
      if (const auto updated = specific->find("updatedInput");
          updated != specific->end() && updated->is_object()) {
        d.updated_input = *updated;
      }
    }
  }
  if ((d.verdict == hook_verdict::deny || d.verdict == hook_verdict::block) && d.reason.empty()) {
    d.reason = "refused by a " + std::string(to_string(e)) + " hook";
  }
  return d;
}

hook_decision combine(const std::vector<hook_decision>& decisions) {
  hook_decision out;
  for (const auto& d : decisions) {
    if (rank(d.verdict) > rank(out.verdict)) {
      out.verdict = d.verdict;
    }
  }
  for (const auto& d : decisions) {
    if (d.verdict == out.verdict) {
      append_line(out.reason, d.reason);
    }
    append_line(out.additional_context, d.additional_context);
    append_line(out.error, d.error);
    if (d.updated_input) {
      out.updated_input = d.updated_input;
    }
  }
  return out;
}

}  // namespace troupe::agents
