#pragma once

// The token ledger: what the LLM gateway spent upstream and what the cache
// saved, in total and per model, client token and agent. Kept in memory,
// written to the store's `ledger` column family (flush(), through a
// store_writer, so the owner never waits for the disk), loaded at start, so
// the figures survive restarts. Not thread-safe: one actor owns it.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "runtime/error.hpp"

namespace troupe {
class db;
class store_writer;
}  // namespace troupe

namespace troupe::llm {

struct ledger_counts {
  /// Requests answered, by how.
  uint64_t requests = 0;
  uint64_t cache_hits = 0;
  /// Answered with the answer of an identical request in flight at the
  /// same time (one upstream call for all of them).
  uint64_t coalesced = 0;
  uint64_t stale_served = 0;
  uint64_t fallbacks = 0;
  uint64_t errors = 0;
  /// Requests that waited in the local limiter instead of drawing a 429.
  uint64_t queued = 0;
  /// Upstream retries made, and retries avoided because the cache answered.
  uint64_t retries = 0;
  uint64_t retries_avoided = 0;
  /// Tokens the upstream billed.
  uint64_t input_tokens = 0;
  uint64_t output_tokens = 0;
  /// Provider prompt-cache reads and writes (also billed, at other rates).
  uint64_t cache_read_input_tokens = 0;
  uint64_t cache_creation_input_tokens = 0;
  /// Tokens the response cache (and coalescing) answered without the
  /// upstream: all of each answer's input, prompt-cache reads and writes
  /// included, and its output.
  uint64_t served_input_tokens = 0;
  uint64_t served_output_tokens = 0;

  /// Upstream tokens spent: what a budget counts.
  [[nodiscard]] uint64_t spent() const {
    return input_tokens + output_tokens + cache_read_input_tokens + cache_creation_input_tokens;
  }
  /// Share of all tokens that the cache answered: served / (served + spent).
  [[nodiscard]] double saved_fraction() const;
  /// Upstream input as billed, in full-price tokens: prompt-cache writes
  /// cost 1.25 times an input token, reads 0.1 times.
  [[nodiscard]] double billed_input_tokens() const;
  /// Full-price input tokens that prompt caching saved: the input as it
  /// would have been billed without it, less billed_input_tokens(). Below
  /// zero while writes have not been read back yet.
  [[nodiscard]] double prompt_cache_saved_tokens() const;
  ledger_counts& operator+=(const ledger_counts& other);
};

/// One answered request, as the ledger books it.
struct ledger_entry {
  std::string model;
  std::string client;
  std::string agent;
  std::string persona;
  ledger_counts counts;
};

class ledger {
 public:
  /// Rows kept per kind: model names and agent names are the client's to
  /// choose, so without a bound they would grow the ledger (and every
  /// /v1/usage answer) without end. Past the bound a new name is booked
  /// under "other".
  static constexpr size_t names_max = 256;

  /// Reads from `store`, writes through `writer`; both may be null (tests,
  /// or no durable ledger).
  ledger(std::shared_ptr<db> store, std::shared_ptr<store_writer> writer);

  /// Reads what earlier runs booked.
  [[nodiscard]] expected<bool> load();
  void book(const ledger_entry& entry);
  /// Hands the rows changed since the last flush to the writer.
  void flush();
  [[nodiscard]] bool dirty() const { return !dirty_.empty(); }

  [[nodiscard]] const ledger_counts& total() const { return rows_.at(total_key); }
  [[nodiscard]] ledger_counts client(const std::string& client) const;
  /// {"total": {...}, "by_model": {...}, "by_client": {...}, "by_agent": {...},
  /// "by_persona": {...}}
  [[nodiscard]] nlohmann::json to_json() const;

 private:
  static constexpr const char* total_key = "total";
  static constexpr const char* other_name = "other";
  void add(const std::string& row, const ledger_counts& counts);
  /// The row for `name` of `kind` ("model", "client", "agent", "persona"), or the
  /// kind's "other" row when the kind is full.
  std::string row_for(const char* kind, const std::string& name);

  std::shared_ptr<db> store_;
  std::shared_ptr<store_writer> writer_;
  /// "total", "model/<m>", "client/<c>", "agent/<a>", "persona/<p>".
  std::map<std::string, ledger_counts> rows_;
  std::set<std::string> dirty_;
  /// Rows per kind, to apply names_max.
  std::map<std::string, size_t, std::less<>> names_;
};

}  // namespace troupe::llm
