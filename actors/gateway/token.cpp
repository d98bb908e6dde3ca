#include "actors/gateway/token.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace troupe {

namespace {

constexpr size_t token_bytes = 32;

std::string random_hex(size_t bytes) {
  std::random_device rd;  // /dev/urandom on Linux
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<unsigned>(rd()) & 0xffu;
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xfu]);
  }
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.pop_back();
  }
  return s;
}

}  // namespace

expected<node_token> load_or_create_token(const std::string& configured,
                                          const std::string& data_dir) {
  if (!configured.empty()) {
    return node_token{configured, "config"};
  }
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return make_error(errc::unavailable,
                      "cannot create data dir '" + data_dir + "': " + ec.message());
  }
  const auto path = (std::filesystem::path(data_dir) / "token").string();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    // Whoever can read it can call every route of this node.
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(errc::config_invalid, "token file '" + path +
                                                "' is open to other users (mode " + mode +
                                                "); run: chmod 600 '" + path + "'");
  }
  if (std::ifstream in(path); in) {
    std::stringstream text;
    text << in.rdbuf();
    auto token = trim(text.str());
    if (token.empty()) {
      return make_error(errc::config_invalid, "token file '" + path +
                                                  "' is empty; delete it to "
                                                  "have a new one generated");
    }
    return node_token{token, path};
  }
  auto token = random_hex(token_bytes);
  // O_EXCL: two nodes started on one data dir must not both write a token.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return make_error(errc::unavailable,
                      "cannot create token file '" + path + "': " + std::strerror(errno));
  }
  auto line = token + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!written || !synced) {
    return make_error(errc::unavailable, "cannot write token file '" + path + "'");
  }
  return node_token{token, path};
}

}  // namespace troupe
