#include "actors/agents/file_tools.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <system_error>
#include <utility>

#include <re2/re2.h>
#include <nlohmann/json.hpp>

namespace troupe::agents {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

tool_output failed(std::string why) {
  tool_output out;
  out.content = std::move(why);
  out.is_error = true;
  return out;
}

/// The note that ends an answer cut at tool_output_bytes_max.
std::string cut_note(std::string_view how_to_go_on) {
  return "\n[output cut at " + std::to_string(tool_output_bytes_max) + " bytes" +
         (how_to_go_on.empty() ? std::string() : ": " + std::string(how_to_go_on)) + "]";
}

/// A string field of the input: absent is nullopt, another type an error.
expected<std::optional<std::string>> text_field(const json& input, const char* name) {
  if (!input.is_object()) {
    return make_error(errc::bad_request, "the input must be a JSON object");
  }
  auto it = input.find(name);
  if (it == input.end() || it->is_null()) {
    return std::optional<std::string>();
  }
  if (!it->is_string()) {
    return make_error(errc::bad_request, std::string(name) + " must be a string");
  }
  return std::optional<std::string>(it->get<std::string>());
}

expected<std::string> required_text(const json& input, const char* name) {
  auto field = text_field(input, name);
  if (!field) {
    return std::move(field).err();
  }
  if (!*field) {
    return make_error(errc::bad_request, std::string(name) + " is required");
  }
  return std::move(**field);
}

/// A positive integer field, or `fallback` when absent.
expected<size_t> count_field(const json& input, const char* name, size_t fallback) {
  auto it = input.find(name);
  if (it == input.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_number_integer() || it->get<int64_t>() < 1) {
    return make_error(errc::bad_request, std::string(name) + " must be a positive integer");
  }
  return static_cast<size_t>(it->get<int64_t>());
}

expected<bool> flag_field(const json& input, const char* name) {
  auto it = input.find(name);
  if (it == input.end() || it->is_null()) {
    return false;
  }
  if (!it->is_boolean()) {
    return make_error(errc::bad_request, std::string(name) + " must be true or false");
  }
  return it->get<bool>();
}

/// The first bytes hold a NUL: not text.
bool looks_binary(std::string_view head) {
  return head.substr(0, 8192).find('\0') != std::string_view::npos;
}

/// A file descriptor, closed with its owner.
class fd_owner {
 public:
  explicit fd_owner(int fd) : fd_(fd) {}
  ~fd_owner() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  fd_owner(fd_owner&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  fd_owner(const fd_owner&) = delete;
  fd_owner& operator=(const fd_owner&) = delete;
  fd_owner& operator=(fd_owner&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) {
        ::close(fd_);
      }
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  [[nodiscard]] int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string errno_text(int e) {
  return std::error_code(e, std::generic_category()).message();
}

/// `path`'s directory, opened so that the kernel refuses any step out of
/// the workspace (openat2 with RESOLVE_BENEATH): a component swapped for a
/// link out after resolve() checked it is refused here, not followed.
/// Where the kernel has no openat2 (before 5.6), a plain open.
expected<fd_owner> open_parent(const workspace& ws, const fs::path& path) {
  fd_owner root(::open(ws.root().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) {
    const int e = errno;
    return make_error(errc::unavailable,
                      "cannot open the workspace " + ws.root().string() + ": " + errno_text(e));
  }
  auto rel = path.parent_path().lexically_relative(ws.root());
  // Out means a first component "..": a directory named "..notes" is in.
  if (rel.empty() || *rel.begin() == "..") {
    if (path.parent_path() != ws.root()) {
      return make_error(errc::forbidden,
                        "'" + path.string() + "' is outside the workspace " + ws.root().string());
    }
    rel = ".";
  }
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, root.get(), rel.c_str(), &how, sizeof how));
  if (fd < 0 && errno == ENOSYS) {
    fd = ::openat(root.get(), rel.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  if (fd < 0) {
    const int e = errno;
    if (e == EXDEV) {
      return make_error(errc::forbidden,
                        "'" + path.string() + "' leads out of the workspace " + ws.root().string());
    }
    return make_error(errc::not_found,
                      "cannot open " + path.parent_path().string() + ": " + errno_text(e));
  }
  return fd_owner(fd);
}

/// `path`'s last component, opened in its checked directory without
/// following a link.
expected<fd_owner> open_leaf(const workspace& ws, const fs::path& path, int flags) {
  auto dir = open_parent(ws, path);
  if (!dir) {
    return std::move(dir).err();
  }
  const int fd = ::openat(dir->get(), path.filename().c_str(), flags | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ELOOP) {
      return make_error(errc::forbidden, path.string() + " became a symbolic link");
    }
    if (e == ENOENT) {
      return make_error(errc::not_found, path.string() + " does not exist");
    }
    return make_error(errc::unavailable, "cannot open " + path.string() + ": " + errno_text(e));
  }
  return fd_owner(fd);
}

/// A whole file, up to tool_file_bytes_max.
expected<std::string> slurp(const workspace& ws, const fs::path& path) {
  auto file = open_leaf(ws, path, O_RDONLY);
  if (!file) {
    return std::move(file).err();
  }
  struct stat st {};
  if (::fstat(file->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return make_error(errc::bad_request, path.string() + " is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > tool_file_bytes_max) {
    return make_error(errc::too_large, path.string() + " is larger than " +
                                           std::to_string(tool_file_bytes_max) + " bytes");
  }
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    const auto n = ::read(file->get(), bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  bytes.resize(got);  // a file that shrank meanwhile
  return bytes;
}

/// Replaces the file's content: a temporary beside it, in the checked
/// directory, renamed over it, so a reader never sees half a file; the new
/// file keeps the old one's mode (an edited script stays executable).
std::optional<std::string> replace_file(const workspace& ws, const fs::path& path,
                                        std::string_view content) {
  auto dir = open_parent(ws, path);
  if (!dir) {
    return dir.err().message;
  }
  const auto leaf = path.filename().string();
  // A name of its own (O_EXCL): never a file someone else has there, nor
  // the temporary of a write running beside this one.
  static std::atomic<uint64_t> next_temp{0};
  std::string temp;
  fd_owner out(-1);
  for (int attempt = 0; attempt < 8 && out.get() < 0; ++attempt) {
    temp = "." + leaf + ".troupe-" + std::to_string(::getpid()) + "-" +
           std::to_string(next_temp.fetch_add(1));
    out = fd_owner(::openat(dir->get(), temp.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
    if (out.get() < 0 && errno != EEXIST) {
      break;
    }
  }
  if (out.get() < 0) {
    const int e = errno;
    return "cannot write " + path.string() + ": " + errno_text(e);
  }
  auto fail = [&](int e) {
    ::unlinkat(dir->get(), temp.c_str(), 0);
    return "cannot write " + path.string() + ": " + errno_text(e);
  };
  size_t done = 0;
  while (done < content.size()) {
    const auto n = ::write(out.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return fail(errno);
    }
    done += static_cast<size_t>(n);
  }
  struct stat before {};
  if (::fstatat(dir->get(), leaf.c_str(), &before, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISREG(before.st_mode)) {
    ::fchmod(out.get(), before.st_mode & 07777);
  }
  if (::close(out.release()) != 0) {
    return fail(errno);
  }
  if (::renameat(dir->get(), temp.c_str(), dir->get(), leaf.c_str()) != 0) {
    return fail(errno);
  }
  return std::nullopt;
}

/// The files under `dir` (not following directory symlinks, not entering
/// `.git`), each inside the workspace.
struct walk_result {
  std::vector<fs::path> files;
  bool cut = false;
};

walk_result walk(const workspace& ws, const fs::path& dir) {
  walk_result out;
  std::error_code ec;
  size_t visited = 0;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  for (const fs::recursive_directory_iterator end; !ec && it != end; it.increment(ec)) {
    if (++visited > walk_entries_max) {
      out.cut = true;
      break;
    }
    std::error_code type_ec;
    if (it->is_directory(type_ec) && !it->is_symlink(type_ec)) {
      if (it->path().filename() == ".git") {
        it.disable_recursion_pending();
      }
      continue;
    }
    if (!it->is_regular_file(type_ec)) {
      continue;
    }
    if (it->is_symlink(type_ec)) {
      const auto target = fs::canonical(it->path(), type_ec);
      if (type_ec || !ws.contains(target)) {
        continue;  // a link out of the workspace is not followed
      }
    }
    out.files.push_back(it->path());
  }
  return out;
}

/// Paths by modification time, newest first, then by name.
void newest_first(std::vector<fs::path>& paths) {
  std::vector<std::pair<fs::file_time_type, fs::path>> timed;
  timed.reserve(paths.size());
  for (auto& p : paths) {
    std::error_code ec;
    timed.emplace_back(fs::last_write_time(p, ec), std::move(p));
  }
  std::sort(timed.begin(), timed.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  paths.clear();
  for (auto& [when, p] : timed) {
    paths.push_back(std::move(p));
  }
}

/// The directory a Glob or Grep starts from: `path`, or the root.
expected<fs::path> start_dir(const workspace& ws, const std::optional<std::string>& path) {
  if (!path || path->empty()) {
    return ws.root();
  }
  return ws.resolve(*path);
}

std::string relative_text(const fs::path& path, const fs::path& base) {
  return path.lexically_relative(base).generic_string();
}

}  // namespace

expected<workspace> workspace::open(const std::string& dir) {
  const fs::path path(dir);
  std::error_code ec;
  if (dir.empty() || !path.is_absolute() || !fs::is_directory(path, ec)) {
    return make_error(errc::bad_request,
                      "workspace: '" + dir + "' is not an absolute path to a directory");
  }
  auto root = fs::canonical(path, ec);
  if (ec) {
    return make_error(errc::bad_request, "workspace: '" + dir + "': " + ec.message());
  }
  return workspace(std::move(root));
}

bool workspace::contains(const fs::path& path) const {
  const auto& root = root_.native();
  const auto& p = path.native();
  if (p == root) {
    return true;
  }
  const bool root_is_slash = root == "/";
  return p.size() > root.size() && p.compare(0, root.size(), root) == 0 &&
         (root_is_slash || p[root.size()] == '/');
}

expected<fs::path> workspace::resolve(std::string_view text) const {
  if (text.empty()) {
    return make_error(errc::bad_request, "the path is empty");
  }
  if (text.find('\0') != std::string_view::npos) {
    return make_error(errc::bad_request, "the path holds a NUL byte");
  }
  fs::path path{std::string(text)};
  if (!path.is_absolute()) {
    path = root_ / path;
  }
  std::error_code ec;
  // Symlinks of the part that exists are followed; the rest is normalised,
  // so `new/../../x` is judged where it really points.
  auto resolved = fs::weakly_canonical(path, ec);
  if (ec) {
    return make_error(errc::bad_request,
                      "cannot resolve '" + std::string(text) + "': " + ec.message());
  }
  if (!contains(resolved)) {
    return make_error(errc::forbidden,
                      "'" + std::string(text) + "' is outside the workspace " + root_.string());
  }
  return resolved;
}

expected<std::string> read_beneath(const workspace& ws, const fs::path& path) {
  return slurp(ws, path);
}

std::string glob_to_regex(std::string_view glob) {
  std::string out;
  int braces = 0;
  for (size_t i = 0; i < glob.size(); ++i) {
    const char c = glob[i];
    if (c == '*') {
      if (i + 1 < glob.size() && glob[i + 1] == '*') {
        ++i;
        if (i + 1 < glob.size() && glob[i + 1] == '/') {
          ++i;
          out += "(?:.*/)?";  // any directories, none included
        } else {
          out += ".*";
        }
      } else {
        out += "[^/]*";
      }
    } else if (c == '?') {
      out += "[^/]";
    } else if (c == '[') {
      const auto close = glob.find(']', i + 2);
      if (close == std::string_view::npos) {
        out += "\\[";
        continue;
      }
      auto body = glob.substr(i + 1, close - i - 1);
      std::string cls = "[";
      if (!body.empty() && (body.front() == '!' || body.front() == '^')) {
        cls += '^';
        body.remove_prefix(1);
      }
      for (char b : body) {
        cls += (b == '\\' || b == '[' || b == ']') ? std::string("\\") + b : std::string(1, b);
      }
      out += cls + "]";
      i = close;
    } else if (c == '{') {
      ++braces;
      out += "(?:";
    } else if (c == '}' && braces > 0) {
      --braces;
      out += ")";
    } else if (c == ',' && braces > 0) {
      out += "|";
    } else {
      out += RE2::QuoteMeta(re2::StringPiece(&c, 1));
    }
  }
  for (; braces > 0; --braces) {
    out += ")";
  }
  return out;
}

tool_output read_tool(const workspace& ws, const json& input) {
  auto file = required_text(input, "file_path");
  if (!file) {
    return failed("Read: " + file.err().message);
  }
  auto offset = count_field(input, "offset", 1);
  auto limit = count_field(input, "limit", read_lines_default);
  if (!offset || !limit) {
    return failed("Read: " + (!offset ? offset.err() : limit.err()).message);
  }
  auto path = ws.resolve(*file);
  if (!path) {
    return failed("Read: " + path.err().message);
  }
  std::error_code ec;
  if (fs::is_directory(*path, ec)) {
    return failed("Read: " + path->string() + " is a directory: list it with Glob or Bash");
  }
  auto opened = open_leaf(ws, *path, O_RDONLY);
  if (!opened) {
    return failed("Read: " + opened.err().message);
  }
  char head[8192];
  const auto head_bytes = ::pread(opened->get(), head, sizeof head, 0);
  if (looks_binary(std::string_view(head, head_bytes > 0 ? static_cast<size_t>(head_bytes) : 0))) {
    return failed("Read: " + path->string() + " is a binary file");
  }
  FILE* in = ::fdopen(opened->get(), "rb");
  if (in == nullptr) {
    return failed("Read: cannot read " + path->string() + ": " + errno_text(errno));
  }
  opened->release();  // the FILE owns it now
  tool_output out;
  out.read_paths.push_back(path->string());
  char* raw = nullptr;
  size_t raw_size = 0;
  size_t number = 0;
  size_t shown = 0;
  bool cut = false;
  while (shown < *limit) {
    auto n = ::getline(&raw, &raw_size, in);
    if (n < 0) {
      break;
    }
    if (++number < *offset) {
      continue;
    }
    std::string_view line(raw, static_cast<size_t>(n));
    if (!line.empty() && line.back() == '\n') {
      line.remove_suffix(1);
    }
    line = line.substr(0, read_line_chars_max);
    char prefix[24];
    std::snprintf(prefix, sizeof prefix, "%6zu\t", number);
    if (out.content.size() + line.size() + sizeof prefix > tool_output_bytes_max) {
      out.content += cut_note("read on with offset " + std::to_string(number));
      cut = true;
      break;
    }
    out.content += prefix;
    out.content += line;
    out.content += "\n";
    ++shown;
  }
  std::free(raw);
  std::fclose(in);
  if (cut) {
    return out;
  }
  if (number == 0) {
    out.content = "(" + path->string() + " is empty)";
  } else if (shown == 0) {
    out.content = "(" + path->string() + " has " + std::to_string(number) +
                  " lines: none from offset " + std::to_string(*offset) + ")";
  }
  return out;
}

tool_output write_tool(const workspace& ws, const json& input) {
  auto file = required_text(input, "file_path");
  auto content = required_text(input, "content");
  if (!file || !content) {
    return failed("Write: " + (!file ? file.err() : content.err()).message);
  }
  auto path = ws.resolve(*file);
  if (!path) {
    return failed("Write: " + path.err().message);
  }
  std::error_code ec;
  if (fs::is_directory(*path, ec)) {
    return failed("Write: " + path->string() + " is a directory");
  }
  const bool existed = fs::exists(*path, ec);
  fs::create_directories(path->parent_path(), ec);
  if (ec) {
    return failed("Write: cannot create " + path->parent_path().string() + ": " + ec.message());
  }
  if (auto why = replace_file(ws, *path, *content)) {
    return failed("Write: " + *why);
  }
  tool_output out;
  out.content = std::string(existed ? "Updated " : "Created ") + path->string() + " (" +
                std::to_string(content->size()) + " bytes)";
  out.written_paths.push_back(path->string());
  return out;
}

tool_output edit_tool(const workspace& ws, const json& input) {
  auto file = required_text(input, "file_path");
  auto old_text = required_text(input, "old_string");
  auto new_text = required_text(input, "new_string");
  auto all = flag_field(input, "replace_all");
  for (const error* e : {file ? nullptr : &file.err(), old_text ? nullptr : &old_text.err(),
                         new_text ? nullptr : &new_text.err(), all ? nullptr : &all.err()}) {
    if (e != nullptr) {
      return failed("Edit: " + e->message);
    }
  }
  if (old_text->empty()) {
    return failed("Edit: old_string is empty: use Write to create a file");
  }
  if (*old_text == *new_text) {
    return failed("Edit: old_string and new_string are the same");
  }
  auto path = ws.resolve(*file);
  if (!path) {
    return failed("Edit: " + path.err().message);
  }
  auto bytes = slurp(ws, *path);
  if (!bytes) {
    return failed("Edit: " + bytes.err().message);
  }
  std::vector<size_t> at;
  for (auto pos = bytes->find(*old_text); pos != std::string::npos;
       pos = bytes->find(*old_text, pos + old_text->size())) {
    at.push_back(pos);
  }
  if (at.empty()) {
    return failed("Edit: old_string is not in " + path->string());
  }
  if (at.size() > 1 && !*all) {
    return failed("Edit: old_string is in " + path->string() + " " + std::to_string(at.size()) +
                  " times: give more context to make it unique, or set replace_all");
  }
  std::string edited;
  edited.reserve(bytes->size() + at.size() * new_text->size());
  size_t from = 0;
  for (const auto pos : at) {
    edited.append(*bytes, from, pos - from);
    edited += *new_text;
    from = pos + old_text->size();
  }
  edited.append(*bytes, from, std::string::npos);
  if (auto why = replace_file(ws, *path, edited)) {
    return failed("Edit: " + *why);
  }
  tool_output out;
  out.content = "Edited " + path->string() + ": " + std::to_string(at.size()) +
                (at.size() == 1 ? " replacement" : " replacements");
  out.read_paths.push_back(path->string());
  out.written_paths.push_back(path->string());
  return out;
}

tool_output glob_tool(const workspace& ws, const json& input) {
  auto pattern = required_text(input, "pattern");
  auto where = text_field(input, "path");
  if (!pattern || !where) {
    return failed("Glob: " + (!pattern ? pattern.err() : where.err()).message);
  }
  auto dir = start_dir(ws, *where);
  if (!dir) {
    return failed("Glob: " + dir.err().message);
  }
  std::error_code ec;
  if (!fs::is_directory(*dir, ec)) {
    return failed("Glob: " + dir->string() + " is not a directory");
  }
  std::string_view glob = *pattern;
  while (glob.starts_with("./")) {
    glob.remove_prefix(2);
  }
  RE2::Options options;
  options.set_log_errors(false);
  const RE2 re(glob_to_regex(glob), options);
  if (!re.ok()) {
    return failed("Glob: '" + *pattern + "' is not a glob: " + re.error());
  }
  auto walked = walk(ws, *dir);
  std::vector<fs::path> found;
  for (auto& file : walked.files) {
    if (RE2::FullMatch(relative_text(file, *dir), re)) {
      found.push_back(std::move(file));
    }
  }
  newest_first(found);
  tool_output out;
  if (found.empty()) {
    out.content = "No files found";
  }
  for (size_t i = 0; i < found.size() && i < glob_results_max; ++i) {
    out.content += found[i].string() + "\n";
  }
  if (found.size() > glob_results_max) {
    out.content += "[" + std::to_string(found.size() - glob_results_max) +
                   " more: narrow the pattern or the path]";
  }
  if (walked.cut) {
    out.content += "\n[stopped after " + std::to_string(walk_entries_max) + " entries]";
  }
  return out;
}

tool_output grep_tool(const workspace& ws, const json& input) {
  auto pattern = required_text(input, "pattern");
  auto where = text_field(input, "path");
  auto glob = text_field(input, "glob");
  auto mode = text_field(input, "output_mode");
  auto insensitive = flag_field(input, "-i");
  auto head_limit = count_field(input, "head_limit", SIZE_MAX);
  for (const error* e :
       {pattern ? nullptr : &pattern.err(), where ? nullptr : &where.err(),
        glob ? nullptr : &glob.err(), mode ? nullptr : &mode.err(),
        insensitive ? nullptr : &insensitive.err(), head_limit ? nullptr : &head_limit.err()}) {
    if (e != nullptr) {
      return failed("Grep: " + e->message);
    }
  }
  const std::string output_mode = mode->value_or("files_with_matches");
  if (output_mode != "files_with_matches" && output_mode != "content" && output_mode != "count") {
    return failed("Grep: output_mode is files_with_matches, content or count");
  }
  RE2::Options options;
  options.set_log_errors(false);
  options.set_case_sensitive(!*insensitive);
  const RE2 re(*pattern, options);
  if (!re.ok()) {
    return failed("Grep: '" + *pattern + "' is not a regular expression (RE2): " + re.error());
  }
  std::optional<RE2> name_filter;
  bool filter_by_base = false;
  if (*glob && !(*glob)->empty()) {
    RE2::Options glob_options;
    glob_options.set_log_errors(false);
    name_filter.emplace(glob_to_regex(**glob), glob_options);
    filter_by_base = (*glob)->find('/') == std::string::npos;
    if (!name_filter->ok()) {
      return failed("Grep: glob '" + **glob + "' is not a glob");
    }
  }
  auto start = start_dir(ws, *where);
  if (!start) {
    return failed("Grep: " + start.err().message);
  }
  std::error_code ec;
  walk_result walked;
  fs::path base = *start;
  if (fs::is_directory(*start, ec)) {
    walked = walk(ws, *start);
  } else if (fs::is_regular_file(*start, ec)) {
    walked.files.push_back(*start);
    base = start->parent_path();
  } else {
    return failed("Grep: " + start->string() + " does not exist");
  }
  tool_output out;
  std::vector<fs::path> matched;
  std::vector<std::string> lines;  // content or count lines, in path order
  size_t skipped = 0;
  std::sort(walked.files.begin(), walked.files.end());
  for (const auto& file : walked.files) {
    if (name_filter) {
      const auto name = filter_by_base ? file.filename().string() : relative_text(file, base);
      if (!RE2::FullMatch(name, *name_filter)) {
        continue;
      }
    }
    // A link (to a file inside: the walk checked) is read at its target.
    std::error_code link_ec;
    const auto target = fs::is_symlink(file, link_ec) ? fs::canonical(file, link_ec) : file;
    auto bytes = slurp(ws, target);
    if (!bytes) {
      ++skipped;  // too large, unreadable, or gone: the model is told below
      continue;
    }
    if (looks_binary(*bytes)) {
      continue;
    }
    out.read_paths.push_back(file.string());
    size_t count = 0;
    size_t number = 0;
    std::string_view rest = *bytes;
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      const auto line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      ++number;
      if (!RE2::PartialMatch(re2::StringPiece(line.data(), line.size()), re)) {
        continue;
      }
      ++count;
      if (output_mode == "content") {
        lines.push_back(file.string() + ":" + std::to_string(number) + ":" +
                        std::string(line.substr(0, read_line_chars_max)));
      } else if (output_mode == "files_with_matches") {
        break;
      }
    }
    if (count > 0) {
      matched.push_back(file);
      if (output_mode == "count") {
        lines.push_back(file.string() + ":" + std::to_string(count));
      }
    }
  }
  if (output_mode == "files_with_matches") {
    newest_first(matched);
    for (const auto& file : matched) {
      lines.push_back(file.string());
    }
  }
  if (lines.empty()) {
    out.content = "No matches found";
  }
  for (size_t i = 0; i < lines.size() && i < *head_limit; ++i) {
    if (out.content.size() + lines[i].size() + 1 > tool_output_bytes_max) {
      out.content += cut_note("narrow the pattern, the path or the glob, or use head_limit");
      break;
    }
    out.content += lines[i] + "\n";
  }
  if (skipped > 0) {
    out.content += "\n[" + std::to_string(skipped) + (skipped == 1 ? " file" : " files") +
                   " not searched: larger than " + std::to_string(tool_file_bytes_max) +
                   " bytes or unreadable]";
  }
  if (walked.cut) {
    out.content += "\n[stopped after " + std::to_string(walk_entries_max) + " entries]";
  }
  return out;
}

}  // namespace troupe::agents
