#include "actors/agents/shell.hpp"

#include <filesystem>
#include <fstream>
#include <random>

#include <caf/all.hpp>

#include "actors/pty/messages.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/node/terminal.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe::agents {

namespace {

namespace fs = std::filesystem;

constexpr const char* manager_path = "sessions/manager";
/// How long the sessions family may take to answer (a create starts a shell).
constexpr std::chrono::seconds session_timeout{10};
/// How long the end marker may take to come once the command's job was
/// killed.
constexpr std::chrono::seconds kill_grace{5};
/// The agent's terminal: wide, so that output is not wrapped.
constexpr int64_t shell_cols = 200;
constexpr int64_t shell_rows = 50;
/// The output kept of a command: as much as a tool result holds, and some
/// for what the text conversion removes.
constexpr size_t capture_bytes_max = 512u << 10;
constexpr decode_limits output_limits{.body_bytes_max = 4u << 20};
/// The session states in which its shell can take a command.
constexpr std::string_view live_states[] = {"starting", "running", "idle", "waiting"};
/// The markers are OSC sequences of a number no terminal uses: a person
/// watching the session sees nothing of them.
constexpr const char* osc_marker = "\x1b]7777;";

std::string new_nonce() {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

/// `s` quoted for the shell.
std::string shell_quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

/// A request from a blocking actor, answered with the reply or an error
/// envelope.
envelope ask(caf::scoped_actor& me, const caf::actor& to, envelope msg) {
  envelope out = make_error_envelope(make_error(errc::unavailable, "no answer"));
  me->request(to, session_timeout, std::move(msg.type), std::move(msg.body), uint64_t{0})
      .receive(
          [&](std::string& type, std::string& body, uint64_t) {
            out = envelope{std::move(type), std::move(body), 0};
          },
          [&](caf::error& e) {
            out = make_error_envelope(make_error(errc::unavailable, to_string(e)));
          });
  return out;
}

/// The agent's shell: bash without startup files or line editing (the
/// terminal echoes what is typed), interactive (job control).
std::vector<std::string> shell_command() {
  return {"/bin/bash", "--noprofile", "--norc", "--noediting", "-i"};
}

/// The id of the agent's live session, started if it has none.
expected<std::string> find_or_start(caf::scoped_actor& me, const caf::actor& manager,
                                    const std::string& agent, const std::string& workspace) {
  const auto name = shell_session_name(agent);
  auto listed = ask(me, manager, make_envelope(pty::list_type, empty_body{}));
  if (listed.is_error()) {
    return read_error(listed);
  }
  auto list = decode<pty::session_list>(listed.body, output_limits);
  if (!list) {
    return std::move(list).err();
  }
  for (const auto& s : list->sessions) {
    // Its name, its workspace and its shell: not a session a person named so.
    if (s.name == name && s.cwd == workspace && s.command == shell_command() &&
        std::find(std::begin(live_states), std::end(live_states), s.state) !=
            std::end(live_states)) {
      return s.id;
    }
  }
  pty::session_spec spec;
  spec.command = shell_command();
  spec.cwd = workspace;
  // No pager, no colours, no history file: output is for a model to read.
  spec.env = {{"TERM", "dumb"},
              {"PAGER", "cat"},
              {"GIT_PAGER", "cat"},
              {"MANPAGER", "cat"},
              {"GIT_TERMINAL_PROMPT", "0"},
              {"HISTFILE", ""},
              {"PS1", name + " \\w \\$ "},
              {"CLAUDE_PROJECT_DIR", workspace},
              {"TROUPE_AGENT", agent}};
  spec.cols = shell_cols;
  spec.rows = shell_rows;
  spec.name = name;
  auto made = ask(me, manager, make_envelope(pty::create_type, spec));
  if (made.is_error()) {
    return read_error(made);
  }
  auto info = decode<pty::session_info>(made.body, output_limits);
  if (!info) {
    return std::move(info).err();
  }
  return info->id;
}

/// Writes the command and its wrapper, named by the call's nonce (a line
/// typed for an earlier call can never run this one's), and the wrapper
/// removes them; the line to type.
expected<std::string> prepare(const node_context& ctx, const std::string& agent,
                              const std::string& command, const std::string& nonce) {
  const auto dir = fs::path(ctx.config.node.data_dir) / "shell";
  std::error_code ec;
  if (fs::create_directories(dir, ec); ec) {
    return make_error(errc::unavailable, "cannot make " + dir.string() + ": " + ec.message());
  }
  const auto stem = agent + "." + nonce;
  const auto cmd = (dir / (stem + ".cmd")).string();
  const auto cwd = (dir / (stem + ".cwd")).string();
  const auto run = (dir / (stem + ".run")).string();
  std::ofstream(cmd, std::ios::trunc) << command << "\n";
  std::ofstream wrapper(run, std::ios::trunc);
  wrapper
      << "cat -- " << shell_quoted(cmd) << "\n"
      << "__troupe_cwd=" << shell_quoted(cwd) << "\n"
      << "printf '\\033]7777;S%s\\007' " << nonce << "\n"
      << "rm -f -- \"$__troupe_cwd\"\n"
      << "( trap 'pwd -P > \"$__troupe_cwd\"' EXIT; . " << shell_quoted(cmd) << " ) </dev/null\n"
      << "__troupe_status=$?\n"
      << "if [ -s \"$__troupe_cwd\" ]; then cd -- \"$(cat \"$__troupe_cwd\")\" 2>/dev/null; fi\n"
      << "rm -f -- " << shell_quoted(cmd) << " \"$__troupe_cwd\" " << shell_quoted(run) << "\n"
      << "printf '\\033]7777;E%s:%d\\007' " << nonce << " \"$__troupe_status\"\n";
  wrapper.close();
  if (!wrapper || !fs::exists(cmd, ec)) {
    return make_error(errc::unavailable, "the command could not be written to " + dir.string());
  }
  return ". " + shell_quoted(run) + "\n";
}

}  // namespace

std::string shell_session_name(const std::string& agent) {
  return "agent:" + agent;
}

shell_capture::shell_capture(std::string nonce, size_t bytes_max)
    : start_(osc_marker + ("S" + nonce) + "\x07"),
      end_(osc_marker + ("E" + nonce) + ":"),
      bytes_max_(bytes_max) {}

void shell_capture::keep(std::string_view bytes) {
  const size_t room = bytes_max_ - std::min(bytes_max_, body_.size());
  body_.append(bytes.substr(0, room));
  cut_ += bytes.size() - std::min(room, bytes.size());
}

bool shell_capture::feed(std::string_view bytes) {
  if (status_) {
    return true;
  }
  scan_.append(bytes);
  if (!started_) {
    const auto at = scan_.find(start_);
    if (at == std::string::npos) {
      // Keep what could be the start of a marker cut in two.
      if (scan_.size() > start_.size()) {
        scan_.erase(0, scan_.size() - start_.size());
      }
      return false;
    }
    started_ = true;
    scan_.erase(0, at + start_.size());
  }
  const auto at = scan_.find(end_);
  if (at == std::string::npos) {
    const size_t hold = end_.size() + 16;
    if (scan_.size() > hold) {
      keep(std::string_view(scan_).substr(0, scan_.size() - hold));
      scan_.erase(0, scan_.size() - hold);
    }
    return false;
  }
  const auto digits = at + end_.size();
  const auto close = scan_.find('\x07', digits);
  if (close == std::string::npos) {
    return false;  // the status is on its way
  }
  keep(std::string_view(scan_).substr(0, at));
  int status = 0;
  for (size_t i = digits; i < close; ++i) {
    if (scan_[i] >= '0' && scan_[i] <= '9') {
      status = status * 10 + (scan_[i] - '0');
    }
  }
  status_ = status;
  scan_.clear();
  return true;
}

std::string terminal_text(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  size_t line_start = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c == '\x1b') {
      // An escape sequence: CSI (ESC [ ... final), OSC (ESC ] ... BEL or
      // ESC \), a charset choice (ESC ( x), or ESC and one byte.
      if (i + 1 >= raw.size()) {
        break;
      }
      const char kind = raw[++i];
      if (kind == '[') {
        while (i + 1 < raw.size() && !(raw[i + 1] >= 0x40 && raw[i + 1] <= 0x7e)) {
          ++i;
        }
        ++i;
      } else if (kind == ']') {
        while (i + 1 < raw.size() && raw[i + 1] != '\x07' &&
               !(raw[i + 1] == '\x1b' && i + 2 < raw.size() && raw[i + 2] == '\\')) {
          ++i;
        }
        i += (i + 1 < raw.size() && raw[i + 1] == '\x07') ? 1 : 2;
      } else if (kind == '(' || kind == ')') {
        ++i;
      }
      continue;
    }
    if (c == '\r') {
      // CRs before an LF end the line with it (a program's CR LF is
      // CR CR LF on the terminal); a CR before anything else makes the
      // line be written over.
      size_t last = i;
      while (last + 1 < raw.size() && raw[last + 1] == '\r') {
        ++last;
      }
      if (last + 1 < raw.size() && raw[last + 1] != '\n') {
        out.resize(line_start);
      }
      i = last;
      continue;
    }
    if (c == '\n') {
      out += '\n';
      line_start = out.size();
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
      continue;
    }
    out += c;
  }
  return out;
}

std::string shell_capture::text() const {
  auto out = terminal_text(body_);
  if (cut_ > 0) {
    out += "\n[troupe: " + std::to_string(cut_) + " more bytes cut]";
  }
  return out;
}

shell_result run_in_session(caf::actor_system& system, const node_context& ctx,
                            const std::string& agent, const std::string& workspace,
                            const std::string& command, std::chrono::milliseconds timeout) {
  shell_result result;
  caf::scoped_actor me{system};
  auto manager = ctx.registry.current(manager_path);
  if (!manager) {
    result.problem = "the node's sessions family is not running (it may be restarting)";
    return result;
  }
  auto id = find_or_start(me, manager, agent, workspace);
  if (!id) {
    result.problem = "the agent's terminal session could not be had: " + id.err().message;
    return result;
  }
  auto session = ctx.registry.current("sessions/live/" + *id);
  if (!session) {
    result.problem = "the agent's terminal session '" + *id + "' is not running";
    return result;
  }
  me->monitor(session);
  auto attached =
      ask(me, session,
          make_envelope(term::attach_type, term::attach_request{*id, false, true, UINT64_MAX}));
  if (attached.is_error()) {
    result.problem =
        "the agent's terminal session did not take it as a viewer: " + read_error(attached).message;
    return result;
  }
  const auto nonce = new_nonce();
  auto line = prepare(ctx, agent, command, nonce);
  if (!line) {
    me->send(session, std::string(term::detach_type), encode(empty_body{}), uint64_t{0});
    result.problem = line.err().message;
    return result;
  }
  auto say = [&](const char* type, const auto& body) {
    me->send(session, std::string(type), encode(body), uint64_t{0});
  };
  // Whatever still runs in the foreground goes first (see the header).
  say(term::signal_type, term::signal_msg{"KILL"});
  // Ctrl-U first: what a person left typed but not entered is dropped, not
  // run with the line.
  say(term::input_type, term::bytes_msg{"\x15" + *line});

  shell_capture capture(nonce, capture_bytes_max);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool done = false;
  // At the timeout the command's job is killed; the end marker then has
  // `kill_grace` to come.
  auto expire = [&] {
    if (result.timed_out) {
      done = true;  // killed, and still no end marker
      return;
    }
    result.timed_out = true;
    say(term::signal_type, term::signal_msg{"KILL"});
    deadline = std::chrono::steady_clock::now() + kill_grace;
  };
  while (!done) {
    const auto wait = std::max(std::chrono::milliseconds(0),
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   deadline - std::chrono::steady_clock::now()));
    me->receive(
        [&](std::string& type, std::string& body, uint64_t) {
          if (type == term::output_type) {
            auto out = decode<term::bytes_msg>(body, output_limits);
            if (!out) {
              return;
            }
            say(term::ack_type, term::ack_msg{out->bytes.size()});
            done = capture.feed(out->bytes);
            // A command that never stops writing keeps the mailbox full:
            // its deadline is checked here too.
            if (!done && std::chrono::steady_clock::now() >= deadline) {
              expire();
            }
          } else if (type == term::close_type) {
            result.shell_ended = true;
            done = true;
          }
        },
        [&](caf::down_msg& down) {
          if (down.source == session.address()) {
            result.shell_ended = true;
            done = true;
          }
        },
        caf::after(wait) >> expire);
  }
  if (!result.shell_ended) {
    say(term::detach_type, empty_body{});
  }
  result.output = capture.text();
  result.status = capture.status();
  return result;
}

}  // namespace troupe::agents
