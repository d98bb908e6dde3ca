// Dependency fingerprints: a cache hit must never be stale, so every kind of
// edit, including one that keeps size and mtime, has to read as changed.

#include "actors/cache/dependency.hpp"

#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

using namespace troupe;
namespace fs = std::filesystem;

namespace {

/// A fresh directory per test, removed with everything in it afterwards.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "troupe-dep-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path operator/(const std::string& name) const { return path_ / name; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE(out);
  out << content;
  out.close();
  REQUIRE(out);
}

void append_file(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  REQUIRE(out);
  out << content;
  out.close();
  REQUIRE(out);
}

dependency_record take(const fs::path& path, const fingerprint_limits& limits = {}) {
  auto record = fingerprint(path.string(), limits);
  INFO((record ? std::string() : record.err().message));
  REQUIRE(record.has_value());
  return *record;
}

dep_status status_of(const dependency_record& record) {
  auto status = check(record, fingerprint_limits{});
  INFO((status ? std::string() : status.err().message));
  REQUIRE(status.has_value());
  return *status;
}

/// root/a.txt, root/sub/b.txt, root/sub/deeper/c.txt
void make_tree(const fs::path& root) {
  fs::create_directories(root / "sub" / "deeper");
  write_file(root / "a.txt", "alpha");
  write_file(root / "sub" / "b.txt", "bravo");
  write_file(root / "sub" / "deeper" / "c.txt", "charlie");
}

}  // namespace

TEST_CASE("a file fingerprint is its size, mtime and content SHA-256") {
  temp_dir dir;
  write_file(dir / "f", "abc");
  const dependency_record record = take(dir / "f");
  CHECK(record.path == (dir / "f").string());
  CHECK_FALSE(record.is_dir);
  CHECK(record.size == 3);
  CHECK(record.mtime_ns != 0);
  // sha256("abc"), the FIPS 180-2 test vector.
  CHECK(record.sha256_hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("an untouched file is unchanged") {
  temp_dir dir;
  write_file(dir / "f", "same content");
  const dependency_record record = take(dir / "f");
  CHECK(status_of(record) == dep_status::unchanged);
}

TEST_CASE("a file rewritten with identical content and times is unchanged") {
  temp_dir dir;
  write_file(dir / "f", "same content");
  const auto mtime = fs::last_write_time(dir / "f");
  const dependency_record record = take(dir / "f");
  write_file(dir / "f", "same content");
  fs::last_write_time(dir / "f", mtime);
  CHECK(status_of(record) == dep_status::unchanged);
}

TEST_CASE("appending to a file reads as changed") {
  temp_dir dir;
  write_file(dir / "f", "line one\n");
  const dependency_record record = take(dir / "f");
  append_file(dir / "f", "line two\n");
  CHECK(status_of(record) == dep_status::changed);
}

TEST_CASE("an edit that keeps size and restores the mtime is caught by the hash") {
  temp_dir dir;
  write_file(dir / "f", "value = 1\n");
  const auto old_mtime = fs::last_write_time(dir / "f");
  const dependency_record record = take(dir / "f");

  write_file(dir / "f", "value = 2\n");
  fs::last_write_time(dir / "f", old_mtime);

  // The cheap check sees nothing: same size, same mtime to the nanosecond.
  // Only the content hash can tell, which is the promise under test.
  const dependency_record now = take(dir / "f");
  REQUIRE(now.size == record.size);
  REQUIRE(now.mtime_ns == record.mtime_ns);
  REQUIRE(now.sha256_hex != record.sha256_hex);
  CHECK(status_of(record) == dep_status::changed);
}

TEST_CASE("a deleted file reads as missing") {
  temp_dir dir;
  write_file(dir / "f", "here");
  const dependency_record record = take(dir / "f");
  fs::remove(dir / "f");
  CHECK(status_of(record) == dep_status::missing);
}

TEST_CASE("a file replaced by a directory reads as changed") {
  temp_dir dir;
  write_file(dir / "f", "here");
  const dependency_record record = take(dir / "f");
  fs::remove(dir / "f");
  fs::create_directory(dir / "f");
  CHECK(status_of(record) == dep_status::changed);
}

TEST_CASE("an untouched directory is unchanged") {
  temp_dir dir;
  make_tree(dir / "tree");
  const dependency_record record = take(dir / "tree");
  CHECK(record.is_dir);
  CHECK(record.size == 0);
  CHECK(record.sha256_hex.size() == 64);
  CHECK(status_of(record) == dep_status::unchanged);
}

TEST_CASE("adding a file to a directory reads as changed") {
  temp_dir dir;
  make_tree(dir / "tree");
  const dependency_record record = take(dir / "tree");
  write_file(dir / "tree" / "sub" / "new.txt", "");
  CHECK(status_of(record) == dep_status::changed);
}

TEST_CASE("renaming a file in a directory reads as changed") {
  temp_dir dir;
  make_tree(dir / "tree");
  const dependency_record record = take(dir / "tree");
  // Same length and same sort position: only the name itself can tell.
  fs::rename(dir / "tree" / "a.txt", dir / "tree" / "b.txt");
  CHECK(status_of(record) == dep_status::changed);
}

TEST_CASE("editing a nested file reads as changed even with its mtime restored") {
  temp_dir dir;
  make_tree(dir / "tree");
  const fs::path nested = dir / "tree" / "sub" / "deeper" / "c.txt";
  const auto old_mtime = fs::last_write_time(nested);
  const dependency_record record = take(dir / "tree");
  write_file(nested, "CHARLIE");
  fs::last_write_time(nested, old_mtime);
  CHECK(status_of(record) == dep_status::changed);
}

TEST_CASE("a directory's hash depends on content, not on where it lives") {
  temp_dir dir;
  make_tree(dir / "one");
  make_tree(dir / "two");
  CHECK(take(dir / "one").sha256_hex == take(dir / "two").sha256_hex);
  write_file(dir / "two" / "a.txt", "ALPHA");
  CHECK(take(dir / "one").sha256_hex != take(dir / "two").sha256_hex);
}

TEST_CASE("a symlink inside a directory is hashed by its target string, not followed") {
  temp_dir dir;
  fs::create_directory(dir / "tree");
  write_file(dir / "outside", "first");
  fs::create_symlink(dir / "outside", dir / "tree" / "link");
  const dependency_record record = take(dir / "tree");

  // The target's content is outside the tree: editing it does not count.
  write_file(dir / "outside", "second");
  CHECK(status_of(record) == dep_status::unchanged);

  // Pointing the link elsewhere does.
  fs::remove(dir / "tree" / "link");
  fs::create_symlink(dir / "elsewhere", dir / "tree" / "link");
  CHECK(status_of(record) == dep_status::changed);
}

TEST_CASE("a deleted directory reads as missing") {
  temp_dir dir;
  make_tree(dir / "tree");
  const dependency_record record = take(dir / "tree");
  fs::remove_all(dir / "tree");
  CHECK(status_of(record) == dep_status::missing);
}

TEST_CASE("relative paths are recorded absolute and normalized") {
  temp_dir dir;
  fs::create_directory(dir / "d");
  write_file(dir / "d" / "f", "x");
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  auto record = fingerprint("./d/../d/f", fingerprint_limits{});
  fs::current_path(cwd);
  REQUIRE(record.has_value());
  CHECK(record->path == (dir / "d" / "f").string());
  auto dir_record = fingerprint((dir / "d").string() + "/", fingerprint_limits{});
  REQUIRE(dir_record.has_value());
  CHECK(dir_record->path == (dir / "d").string());
}

TEST_CASE("a record survives encode and decode unchanged") {
  temp_dir dir;
  write_file(dir / "f", "payload");
  make_tree(dir / "tree");
  for (const dependency_record& record : {take(dir / "f"), take(dir / "tree")}) {
    const std::string bytes = encode_record(record);
    auto decoded = decode_record(bytes);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == record);
  }
  // Paths may hold the separator characters; lengths keep fields apart.
  const dependency_record odd{"/a:b/1:c", false, 7, -42, std::string(64, 'e')};
  auto decoded = decode_record(encode_record(odd));
  REQUIRE(decoded.has_value());
  CHECK(*decoded == odd);
}

TEST_CASE("the record encoding is pinned") {
  const dependency_record record{"/a/b", false, 3, 123456, std::string(64, '0')};
  CHECK(encode_record(record) ==
        "dep14:/a/b1:f1:36:123456"
        "64:" +
            std::string(64, '0'));
}

TEST_CASE("a key record survives encode and decode, and its encoding is pinned") {
  const key_record record{std::string("a:b\0c", 5), 18446744073709551615ull};
  const auto encoded = encode_key_record(record);
  CHECK(encoded == std::string("key15:a:b\0c20:18446744073709551615", 34));
  CHECK(is_key_record(encoded));
  CHECK_FALSE(
      is_key_record(encode_record(dependency_record{"/a", false, 0, 0, std::string(64, '0')})));
  auto decoded = decode_key_record(encoded);
  REQUIRE(decoded.has_value());
  CHECK(*decoded == record);
  CHECK(decode_key_record(encode_key_record({"", 1})).has_value());  // the empty key is a key
  for (const std::string bad :
       {"", "key1", "key11:k", "key11:k1:x", "key11:k2:1x", "key11:k1:1z", "dep11:k1:1"}) {
    INFO("input: " << bad);
    auto r = decode_key_record(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.err().code == errc::corrupt);
  }
}

TEST_CASE("decoding garbage gives a corrupt error") {
  const std::string good =
      encode_record(dependency_record{"/a/b", false, 3, 123456, std::string(64, 'a')});
  REQUIRE(decode_record(good).has_value());
  const std::string hex64(64, 'a');
  const std::string bad_inputs[] = {
      "",
      "garbage",
      "dep1",
      good.substr(0, good.size() - 1),                       // cut short
      good + "x",                                            // trailing bytes
      "dep14:/a/b1:x1:36:12345664:" + hex64,                 // bad kind
      "dep14:a/bb1:f1:36:12345664:" + hex64,                 // relative path
      "dep14:/a/b1:f1:x6:12345664:" + hex64,                 // size not a number
      "dep14:/a/b1:f1:36:12345664:" + std::string(64, 'G'),  // not hex
      "dep104:/a/b1:f1:36:12345664:" + hex64,                // leading zero in a length
      "dep199999999999999999999999:/a",                      // absurd length
  };
  for (const std::string& input : bad_inputs) {
    INFO("input: " << input);
    auto decoded = decode_record(input);
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.err().code == errc::corrupt);
    CHECK(decoded.err().message.find("dependency record is corrupt") != std::string::npos);
  }
}

TEST_CASE("a file over file_bytes_max is refused as too_large, naming it") {
  temp_dir dir;
  fingerprint_limits limits;
  limits.file_bytes_max = 16;
  write_file(dir / "fits", std::string(16, 'x'));
  write_file(dir / "big", std::string(17, 'x'));
  CHECK(fingerprint((dir / "fits").string(), limits).has_value());
  auto record = fingerprint((dir / "big").string(), limits);
  REQUIRE_FALSE(record.has_value());
  CHECK(record.err().code == errc::too_large);
  CHECK(record.err().message.find((dir / "big").string()) != std::string::npos);
}

TEST_CASE("a directory over entries_max or depth_max is refused as too_large") {
  temp_dir dir;
  make_tree(dir / "tree");  // 5 entries; c.txt is 3 levels below the root
  fingerprint_limits limits;
  limits.entries_max = 5;
  limits.depth_max = 3;
  CHECK(fingerprint((dir / "tree").string(), limits).has_value());

  fingerprint_limits few = limits;
  few.entries_max = 4;
  auto too_many = fingerprint((dir / "tree").string(), few);
  REQUIRE_FALSE(too_many.has_value());
  CHECK(too_many.err().code == errc::too_large);
  CHECK(too_many.err().message.find("entries_max") != std::string::npos);

  fingerprint_limits shallow = limits;
  shallow.depth_max = 2;
  auto too_deep = fingerprint((dir / "tree").string(), shallow);
  REQUIRE_FALSE(too_deep.has_value());
  CHECK(too_deep.err().code == errc::too_large);
  CHECK(too_deep.err().message.find("depth_max") != std::string::npos);
}

TEST_CASE("a nonexistent path is not_found, naming the path") {
  temp_dir dir;
  const std::string path = (dir / "no-such-file").string();
  auto record = fingerprint(path, fingerprint_limits{});
  REQUIRE_FALSE(record.has_value());
  CHECK(record.err().code == errc::not_found);
  CHECK(record.err().message == "dependency '" + path + "' does not exist");
}

TEST_CASE("an empty path is a bad request") {
  auto record = fingerprint("", fingerprint_limits{});
  REQUIRE_FALSE(record.has_value());
  CHECK(record.err().code == errc::bad_request);
}
