// The agents' file tools on real files in a temp workspace: Claude Code's
// input shapes and answers, the workspace boundary (`..`, absolute paths,
// symlinks out), and the tool errors a model reads.

#include "actors/agents/file_tools.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <re2/re2.h>
#include <nlohmann/json.hpp>

#include "tests/support/scratch_dir.hpp"

using namespace troupe;
using namespace troupe::agents;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_back(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

/// A workspace in a temp dir, and a directory beside it (outside).
struct sandbox {
  sandbox() {
    fs::create_directories(root());
    fs::create_directories(outside());
    auto opened = workspace::open(root().string());
    REQUIRE(opened);
    ws = *opened;
  }
  fs::path root() const { return fs::canonical(fs::path(dir.path())) / "ws"; }
  fs::path outside() const { return fs::canonical(fs::path(dir.path())) / "outside"; }

  test::scratch_dir dir{"tools"};
  workspace ws = *workspace::open("/");
};

}  // namespace

TEST_CASE("file tools: the workspace boundary holds against .., absolute paths and symlinks") {
  sandbox s;
  write_file(s.outside() / "secret.txt", "top secret\n");
  write_file(s.root() / "a.txt", "a\n");
  fs::create_directory_symlink(s.outside(), s.root() / "out");
  fs::create_symlink(s.outside() / "secret.txt", s.root() / "secret-link.txt");
  fs::create_symlink(s.root() / "a.txt", s.root() / "inner-link.txt");

  CHECK(s.ws.resolve("a.txt"));
  CHECK(*s.ws.resolve("sub/../a.txt") == s.root() / "a.txt");
  CHECK(*s.ws.resolve((s.root() / "a.txt").string()) == s.root() / "a.txt");
  CHECK(*s.ws.resolve("new/dir/file.txt") == s.root() / "new" / "dir" / "file.txt");
  CHECK(*s.ws.resolve("inner-link.txt") == s.root() / "a.txt");
  for (const auto* bad : {"../outside/secret.txt", "new/../../outside/x", "/etc/passwd",
                          "out/secret.txt", "secret-link.txt", "out"}) {
    INFO(bad);
    auto r = s.ws.resolve(bad);
    REQUIRE_FALSE(r);
    CHECK(r.err().message.find("is outside the workspace " + s.root().string()) !=
          std::string::npos);
  }
  // The kernel's check, given paths resolve() would have refused: a
  // directory that is a link out, and a last component that is a link.
  auto plain = read_beneath(s.ws, s.root() / "a.txt");
  REQUIRE(plain);
  CHECK(*plain == "a\n");
  auto through = read_beneath(s.ws, s.root() / "out" / "secret.txt");
  REQUIRE_FALSE(through);
  CHECK(through.err().message.find("leads out of the workspace") != std::string::npos);
  auto leaf = read_beneath(s.ws, s.root() / "secret-link.txt");
  REQUIRE_FALSE(leaf);
  CHECK(leaf.err().message == (s.root() / "secret-link.txt").string() + " became a symbolic link");
  CHECK_FALSE(s.ws.resolve(""));
  CHECK_FALSE(workspace::open("relative/dir"));
  CHECK_FALSE(workspace::open((s.root() / "missing").string()));

  // Every tool refuses, with the reason, and touches nothing.
  auto r = read_tool(s.ws, json{{"file_path", "../outside/secret.txt"}});
  CHECK(r.is_error);
  CHECK(r.content.find("Read: '../outside/secret.txt' is outside the workspace") == 0);
  r = write_tool(s.ws, json{{"file_path", "out/new.txt"}, {"content", "x"}});
  CHECK(r.is_error);
  CHECK_FALSE(fs::exists(s.outside() / "new.txt"));
  r = edit_tool(
      s.ws, json{{"file_path", "secret-link.txt"}, {"old_string", "top"}, {"new_string", "no"}});
  CHECK(r.is_error);
  CHECK(read_back(s.outside() / "secret.txt") == "top secret\n");
  CHECK(glob_tool(s.ws, json{{"pattern", "*"}, {"path", "/etc"}}).is_error);
  CHECK(grep_tool(s.ws, json{{"pattern", "secret"}, {"path", ".."}}).is_error);
  // A walk does not follow links out either.
  r = grep_tool(s.ws, json{{"pattern", "secret"}});
  CHECK(r.content == "No matches found");
  r = glob_tool(s.ws, json{{"pattern", "**/*.txt"}});
  CHECK(r.content.find("secret") == std::string::npos);
  CHECK(r.content.find((s.root() / "a.txt").string()) != std::string::npos);
}

TEST_CASE("file tools: Read numbers lines, pages with offset and limit, and refuses non-text") {
  sandbox s;
  std::string text;
  for (int i = 1; i <= 30; ++i) {
    text += "line " + std::to_string(i) + "\n";
  }
  write_file(s.root() / "f.txt", text);
  write_file(s.root() / "long.txt", std::string(5000, 'x') + "\n");
  write_file(s.root() / "empty.txt", "");
  write_file(s.root() / "bin.dat", std::string("ab\0cd", 5));

  auto r = read_tool(s.ws, json{{"file_path", "f.txt"}, {"offset", 3}, {"limit", 2}});
  CHECK_FALSE(r.is_error);
  CHECK(r.content == "     3\tline 3\n     4\tline 4\n");
  CHECK(r.read_paths == std::vector<std::string>{(s.root() / "f.txt").string()});
  r = read_tool(s.ws, json{{"file_path", (s.root() / "f.txt").string()}});
  CHECK(r.content.find("    30\tline 30\n") != std::string::npos);
  r = read_tool(s.ws, json{{"file_path", "long.txt"}});
  CHECK(r.content.size() == 7 + read_line_chars_max + 1);
  CHECK(read_tool(s.ws, json{{"file_path", "empty.txt"}}).content ==
        "(" + (s.root() / "empty.txt").string() + " is empty)");
  CHECK(read_tool(s.ws, json{{"file_path", "f.txt"}, {"offset", 99}}).content.find("30 lines") !=
        std::string::npos);

  r = read_tool(s.ws, json{{"file_path", "bin.dat"}});
  CHECK(r.is_error);
  CHECK(r.content == "Read: " + (s.root() / "bin.dat").string() + " is a binary file");
  CHECK(read_tool(s.ws, json{{"file_path", "."}}).is_error);
  CHECK(read_tool(s.ws, json{{"file_path", "nope.txt"}}).content ==
        "Read: " + (s.root() / "nope.txt").string() + " does not exist");
  CHECK(read_tool(s.ws, json{{"file_path", 7}}).content == "Read: file_path must be a string");
  CHECK(read_tool(s.ws, json::object()).content == "Read: file_path is required");
  CHECK(read_tool(s.ws, json{{"file_path", "f.txt"}, {"offset", 0}}).content ==
        "Read: offset must be a positive integer");
  CHECK(read_tool(s.ws, json::array()).is_error);
}

TEST_CASE("file tools: Write creates and replaces files, directories included") {
  sandbox s;
  auto r = write_tool(s.ws, json{{"file_path", "src/new/a.py"}, {"content", "print(1)\n"}});
  CHECK_FALSE(r.is_error);
  CHECK(r.content == "Created " + (s.root() / "src/new/a.py").string() + " (9 bytes)");
  CHECK(r.written_paths == std::vector<std::string>{(s.root() / "src/new/a.py").string()});
  // A directory whose name starts with two dots is inside like any other.
  r = write_tool(s.ws, json{{"file_path", "..notes/n.txt"}, {"content", "n"}});
  CHECK_FALSE(r.is_error);
  CHECK(read_tool(s.ws, json{{"file_path", "..notes/n.txt"}}).content == "     1\tn\n");
  // A file that happens to have a name like a temporary is left alone, and
  // no temporary is left behind.
  write_file(s.root() / "src/new/a.py.troupe-tmp", "keep me");
  CHECK_FALSE(
      write_tool(s.ws, json{{"file_path", "src/new/a.py"}, {"content", "print(1)\n"}}).is_error);
  CHECK(read_back(s.root() / "src/new/a.py.troupe-tmp") == "keep me");
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(s.root() / "src/new")) {
    ++entries;
  }
  CHECK(entries == 2);
  CHECK(read_back(s.root() / "src/new/a.py") == "print(1)\n");
  r = write_tool(s.ws, json{{"file_path", "src/new/a.py"}, {"content", ""}});
  CHECK(r.content.rfind("Updated ", 0) == 0);
  CHECK(read_back(s.root() / "src/new/a.py").empty());
  CHECK(write_tool(s.ws, json{{"file_path", "src"}, {"content", "x"}}).is_error);
  CHECK(write_tool(s.ws, json{{"file_path", "b.txt"}}).content == "Write: content is required");
}

TEST_CASE("file tools: Edit replaces one exact occurrence, or all when told, and keeps the mode") {
  sandbox s;
  write_file(s.root() / "run.sh", "#!/bin/sh\necho one\necho two\necho one\n");
  fs::permissions(s.root() / "run.sh", fs::perms::owner_all);

  auto edit = [&](const json& more) {
    json input{{"file_path", "run.sh"}};
    input.update(more);
    return edit_tool(s.ws, input);
  };
  auto r = edit({{"old_string", "echo one"}, {"new_string", "echo 1"}});
  CHECK(r.is_error);
  CHECK(r.content == "Edit: old_string is in " + (s.root() / "run.sh").string() +
                         " 2 times: give more context to make it unique, or set replace_all");
  r = edit({{"old_string", "echo two"}, {"new_string", "echo 2"}});
  CHECK_FALSE(r.is_error);
  CHECK(r.content == "Edited " + (s.root() / "run.sh").string() + ": 1 replacement");
  r = edit({{"old_string", "echo one"}, {"new_string", "echo 1"}, {"replace_all", true}});
  CHECK(r.content == "Edited " + (s.root() / "run.sh").string() + ": 2 replacements");
  CHECK(read_back(s.root() / "run.sh") == "#!/bin/sh\necho 1\necho 2\necho 1\n");
  CHECK((fs::status(s.root() / "run.sh").permissions() & fs::perms::owner_exec) != fs::perms::none);

  CHECK(edit({{"old_string", "absent"}, {"new_string", "x"}}).content ==
        "Edit: old_string is not in " + (s.root() / "run.sh").string());
  CHECK(edit({{"old_string", "x"}, {"new_string", "x"}}).content ==
        "Edit: old_string and new_string are the same");
  CHECK(edit({{"old_string", ""}, {"new_string", "x"}}).is_error);
  CHECK(edit({{"old_string", "echo"}, {"new_string", "x"}, {"replace_all", "yes"}}).content ==
        "Edit: replace_all must be true or false");
  CHECK(edit_tool(s.ws, json{{"file_path", "none.txt"}, {"old_string", "a"}, {"new_string", "b"}})
            .is_error);
}

TEST_CASE("file tools: Glob matches ** across directories, newest first, skipping .git") {
  sandbox s;
  write_file(s.root() / "main.cpp", "");
  write_file(s.root() / "src/a.cpp", "");
  write_file(s.root() / "src/deep/b.cpp", "");
  write_file(s.root() / "src/deep/b.hpp", "");
  write_file(s.root() / ".git/objects/x.cpp", "");
  const auto now = fs::file_time_type::clock::now();
  fs::last_write_time(s.root() / "main.cpp", now - std::chrono::hours(3));
  fs::last_write_time(s.root() / "src/a.cpp", now - std::chrono::hours(1));
  fs::last_write_time(s.root() / "src/deep/b.cpp", now - std::chrono::hours(2));

  auto r = glob_tool(s.ws, json{{"pattern", "**/*.cpp"}});
  CHECK(r.content == (s.root() / "src/a.cpp").string() + "\n" +
                         (s.root() / "src/deep/b.cpp").string() + "\n" +
                         (s.root() / "main.cpp").string() + "\n");
  CHECK(glob_tool(s.ws, json{{"pattern", "*.cpp"}}).content ==
        (s.root() / "main.cpp").string() + "\n");
  r = glob_tool(s.ws, json{{"pattern", "deep/*.{cpp,hpp}"}, {"path", "src"}});
  CHECK(r.content.find("b.cpp") != std::string::npos);
  CHECK(r.content.find("b.hpp") != std::string::npos);
  CHECK(glob_tool(s.ws, json{{"pattern", "*.rs"}}).content == "No files found");
  CHECK(glob_tool(s.ws, json{{"pattern", "x"}, {"path", "main.cpp"}}).is_error);
}

TEST_CASE("file tools: Grep lists files, lines or counts, with -i, a glob and head_limit") {
  sandbox s;
  write_file(s.root() / "a.py", "import os\nALERT: fix\nx = 1\n");
  write_file(s.root() / "b.py", "alert later\n");
  write_file(s.root() / "notes.md", "ALERT in markdown\n");
  write_file(s.root() / "bin.dat", std::string("ALERT\0", 6));
  const auto a = (s.root() / "a.py").string();
  const auto b = (s.root() / "b.py").string();

  auto r = grep_tool(s.ws, json{{"pattern", "ALERT"}, {"glob", "*.py"}});
  CHECK(r.content == a + "\n");
  r = grep_tool(s.ws, json{{"pattern", "ALERT"}, {"-i", true}, {"output_mode", "content"}});
  CHECK(r.content == a + ":2:ALERT: fix\n" + b + ":1:alert later\n" +
                         (s.root() / "notes.md").string() + ":1:ALERT in markdown\n");
  // What the answer depends on: every text file searched, matched or not.
  CHECK(r.read_paths.size() == 3);
  r = grep_tool(s.ws, json{{"pattern", "t"}, {"output_mode", "count"}, {"glob", "*.py"}});
  CHECK(r.content == a + ":1\n" + b + ":1\n");  // lines that match, not matches
  r = grep_tool(
      s.ws,
      json{{"pattern", "."}, {"output_mode", "content"}, {"head_limit", 2}, {"path", "a.py"}});
  CHECK(r.content == a + ":1:import os\n" + a + ":2:ALERT: fix\n");
  CHECK(grep_tool(s.ws, json{{"pattern", "nothing-here"}}).content == "No matches found");
  // A file it cannot search is not passed over in silence (a sparse file
  // one byte over the bound).
  write_file(s.root() / "huge.py", "ALERT\n");
  fs::resize_file(s.root() / "huge.py", tool_file_bytes_max + 1);
  r = grep_tool(s.ws, json{{"pattern", "ALERT"}, {"glob", "huge.py"}});
  CHECK(r.content ==
        "No matches found\n[1 file not searched: larger than 16777216 bytes or unreadable]");
  CHECK(r.read_paths.empty());
  fs::remove(s.root() / "huge.py");
  r = grep_tool(s.ws, json{{"pattern", "(unclosed"}});
  CHECK(r.is_error);
  CHECK(r.content.rfind("Grep: '(unclosed' is not a regular expression (RE2): ", 0) == 0);
  CHECK(grep_tool(s.ws, json{{"pattern", "x"}, {"output_mode", "lines"}}).content ==
        "Grep: output_mode is files_with_matches, content or count");
}

TEST_CASE("file tools: globs become anchored RE2 patterns") {
  auto matches = [](const char* glob, const char* path) {
    return RE2::FullMatch(path, RE2(glob_to_regex(glob)));
  };
  CHECK(matches("**/*.cpp", "a.cpp"));
  CHECK(matches("**/*.cpp", "x/y/a.cpp"));
  CHECK_FALSE(matches("*.cpp", "x/a.cpp"));
  CHECK(matches("src/**", "src/a/b"));
  CHECK(matches("?.md", "a.md"));
  CHECK_FALSE(matches("?.md", "ab.md"));
  CHECK(matches("[ab].txt", "b.txt"));
  CHECK(matches("[!ab].txt", "c.txt"));
  CHECK_FALSE(matches("[!ab].txt", "a.txt"));
  CHECK(matches("{src,lib}/*.rs", "lib/x.rs"));
  CHECK(matches("a+b(1).txt", "a+b(1).txt"));
  CHECK(matches("[unclosed", "[unclosed"));
}
