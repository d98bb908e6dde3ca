#include "runtime/log/log.hpp"

#include <spdlog/logger.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

using namespace troupe;

namespace {

// Points the shared sink at a string stream for one test, and back at stderr
// afterwards even when the test fails, so no later log writes to a dead stream.
struct log_capture {
  std::ostringstream out;

  explicit log_capture(log_options opts) { init_logging(opts, &out); }
  ~log_capture() { init_logging(log_options{}, nullptr); }
  log_capture(const log_capture&) = delete;
  log_capture& operator=(const log_capture&) = delete;

  std::vector<std::string> lines() const {
    std::vector<std::string> result;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) {
      result.push_back(line);
    }
    return result;
  }
};

const std::regex timestamp_re(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");

}  // namespace

TEST_CASE("json format writes one parseable object per line with escaping", "[log]") {
  log_capture capture({log_level::info, log_format::json});
  std::string nasty = "say \"hi\"\\ then\nnew line\r\ttab \x01 bell\x07 ünï 日本";
  logger("gateway")->info("{}", nasty);
  logger("supervisor")->warn("restart {} of {}", 2, 5);

  auto lines = capture.lines();
  REQUIRE(lines.size() == 2);
  auto first = nlohmann::json::parse(lines[0]);
  CHECK(first.size() == 4);
  CHECK(std::regex_match(first["ts"].get<std::string>(), timestamp_re));
  CHECK(first["level"] == "info");
  CHECK(first["logger"] == "gateway");
  CHECK(first["msg"] == nasty);
  auto second = nlohmann::json::parse(lines[1]);
  CHECK(second["level"] == "warn");
  CHECK(second["logger"] == "supervisor");
  CHECK(second["msg"] == "restart 2 of 5");
}

TEST_CASE("json format keeps lines parseable when a message is not UTF-8", "[log]") {
  log_capture capture({log_level::info, log_format::json});
  logger("pty")->info("{}", std::string("ok \xff\xfe bad \xe6\x97 cut"));

  auto lines = capture.lines();
  REQUIRE(lines.size() == 1);
  auto record = nlohmann::json::parse(lines[0]);
  CHECK(record["msg"] == "ok \xef\xbf\xbd\xef\xbf\xbd bad \xef\xbf\xbd\xef\xbf\xbd cut");
}

TEST_CASE("text format is timestamp, padded level, [subsystem], message", "[log]") {
  log_capture capture({log_level::debug, log_format::text});
  logger("gateway")->info("listening on {}", "127.0.0.1:7700");
  logger("gateway")->warn("two\nlines");

  auto lines = capture.lines();
  REQUIRE(lines.size() == 2);
  const std::regex first_re(R"(\S+ info  \[gateway\] listening on 127\.0\.0\.1:7700)");
  CHECK(std::regex_match(lines[0], first_re));
  CHECK(std::regex_match(lines[0].substr(0, 24), timestamp_re));
  CHECK_THAT(lines[1], Catch::EndsWith(" warn  [gateway] two\\nlines"));
}

TEST_CASE("level applies to existing and new loggers", "[log]") {
  auto existing = logger("cache");
  log_capture capture({log_level::warn, log_format::text});
  existing->info("dropped");
  logger("brand_new_subsystem")->info("dropped too");
  existing->error("kept");

  auto lines = capture.lines();
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], Catch::EndsWith(" error [cache] kept"));
}

TEST_CASE("logger returns one logger per subsystem", "[log]") {
  CHECK(logger("agent") == logger("agent"));
  CHECK(logger("agent") != logger("llm"));
  CHECK(logger("agent")->name() == "agent");
}

TEST_CASE("every level's name is spdlog's, and off logs nothing", "[log]") {
  for (auto level : {log_level::trace, log_level::debug, log_level::info, log_level::warn,
                     log_level::error, log_level::critical}) {
    log_capture capture({level, log_format::json});
    logger("gateway")->critical("always");
    auto lines = capture.lines();
    REQUIRE(lines.size() == 1);
    CHECK(nlohmann::json::parse(lines[0])["level"] == "critical");
  }
  log_capture off({log_level::off, log_format::text});
  logger("gateway")->critical("never");
  CHECK(off.lines().empty());
}
