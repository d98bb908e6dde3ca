#include "actors/llm/ledger.hpp"

#include <cmath>

#include <nlohmann/json.hpp>

#include "storage/db.hpp"
#include "storage/writer.hpp"

namespace troupe::llm {

namespace {

using json = nlohmann::json;

// One list drives the JSON rendering and the stored form, so a new counter
// is added in one place.
constexpr std::pair<const char*, uint64_t ledger_counts::*> fields[] = {
    {"requests", &ledger_counts::requests},
    {"cache_hits", &ledger_counts::cache_hits},
    {"coalesced", &ledger_counts::coalesced},
    {"stale_served", &ledger_counts::stale_served},
    {"fallbacks", &ledger_counts::fallbacks},
    {"errors", &ledger_counts::errors},
    {"queued", &ledger_counts::queued},
    {"retries", &ledger_counts::retries},
    {"retries_avoided", &ledger_counts::retries_avoided},
    {"input_tokens", &ledger_counts::input_tokens},
    {"output_tokens", &ledger_counts::output_tokens},
    {"cache_read_input_tokens", &ledger_counts::cache_read_input_tokens},
    {"cache_creation_input_tokens", &ledger_counts::cache_creation_input_tokens},
    {"served_input_tokens", &ledger_counts::served_input_tokens},
    {"served_output_tokens", &ledger_counts::served_output_tokens},
};

json to_json_counts(const ledger_counts& c) {
  json out = json::object();
  for (const auto& [name, member] : fields) {
    out[name] = c.*member;
  }
  const auto served = c.served_input_tokens + c.served_output_tokens;
  out["upstream_tokens"] = c.spent();
  out["served_tokens"] = served;
  out["saved_fraction"] = c.saved_fraction();
  out["billed_input_tokens"] = std::llround(c.billed_input_tokens());
  out["prompt_cache_saved_tokens"] = std::llround(c.prompt_cache_saved_tokens());
  return out;
}

ledger_counts from_json_counts(const json& j) {
  ledger_counts c;
  for (const auto& [name, member] : fields) {
    if (auto it = j.find(name); it != j.end() && it->is_number_unsigned()) {
      c.*member = it->get<uint64_t>();
    }
  }
  return c;
}

}  // namespace

double ledger_counts::saved_fraction() const {
  const double served = static_cast<double>(served_input_tokens + served_output_tokens);
  const double all = served + static_cast<double>(spent());
  return all == 0 ? 0.0 : served / all;
}

// The provider's prices relative to an input token.
constexpr double cache_write_price = 1.25;
constexpr double cache_read_price = 0.1;

double ledger_counts::billed_input_tokens() const {
  return static_cast<double>(input_tokens) +
         cache_write_price * static_cast<double>(cache_creation_input_tokens) +
         cache_read_price * static_cast<double>(cache_read_input_tokens);
}

double ledger_counts::prompt_cache_saved_tokens() const {
  return static_cast<double>(input_tokens + cache_creation_input_tokens + cache_read_input_tokens) -
         billed_input_tokens();
}

ledger_counts& ledger_counts::operator+=(const ledger_counts& other) {
  for (const auto& [name, member] : fields) {
    this->*member += other.*member;
  }
  return *this;
}

ledger::ledger(std::shared_ptr<db> store, std::shared_ptr<store_writer> writer)
    : store_(std::move(store)), writer_(std::move(writer)) {
  rows_[total_key] = {};
}

expected<bool> ledger::load() {
  if (!store_) {
    return true;
  }
  // A row per model, client and agent: thousands at most. The column family
  // also keeps answers for the stale fallback, which are not read here.
  constexpr size_t rows_max = 1'000'000;
  for (const char* prefix : {"total", "model/", "client/", "agent/", "persona/"}) {
    auto rows = store_->scan_prefix(column::ledger, prefix, 0, rows_max);
    if (!rows) {
      return std::move(rows).err();
    }
    for (const auto& [key, value] : *rows) {
      auto parsed = json::parse(value, nullptr, false);
      if (parsed.is_discarded() || !parsed.is_object()) {
        return make_error(errc::corrupt, "ledger row '" + key + "' is not a JSON object");
      }
      rows_[key] = from_json_counts(parsed);
      if (const auto slash = key.find('/'); slash != std::string::npos) {
        ++names_[key.substr(0, slash)];
      }
    }
  }
  return true;
}

void ledger::add(const std::string& row, const ledger_counts& counts) {
  rows_[row] += counts;
  dirty_.insert(row);
}

std::string ledger::row_for(const char* kind, const std::string& name) {
  auto row = std::string(kind) + "/" + name;
  if (rows_.contains(row)) {
    return row;
  }
  auto& count = names_[kind];
  if (count >= names_max) {
    return std::string(kind) + "/" + other_name;
  }
  ++count;
  return row;
}

void ledger::book(const ledger_entry& entry) {
  add(total_key, entry.counts);
  if (!entry.model.empty()) {
    add(row_for("model", entry.model), entry.counts);
  }
  if (!entry.client.empty()) {
    add(row_for("client", entry.client), entry.counts);
  }
  if (!entry.agent.empty()) {
    add(row_for("agent", entry.agent), entry.counts);
  }
  if (!entry.persona.empty()) {
    add(row_for("persona", entry.persona), entry.counts);
  }
}

void ledger::flush() {
  if (writer_) {
    for (const auto& row : dirty_) {
      writer_->put(column::ledger, row, to_json_counts(rows_[row]).dump());
    }
  }
  dirty_.clear();
}

ledger_counts ledger::client(const std::string& client) const {
  auto it = rows_.find("client/" + client);
  return it == rows_.end() ? ledger_counts{} : it->second;
}

json ledger::to_json() const {
  json out = json::object();
  out["total"] = to_json_counts(total());
  json by_model = json::object();
  json by_client = json::object();
  json by_agent = json::object();
  json by_persona = json::object();
  for (const auto& [row, counts] : rows_) {
    const auto slash = row.find('/');
    if (slash == std::string::npos) {
      continue;
    }
    const auto kind = row.substr(0, slash);
    const auto name = row.substr(slash + 1);
    auto& target = kind == "model"    ? by_model
                   : kind == "client" ? by_client
                   : kind == "agent"  ? by_agent
                                      : by_persona;
    target[name] = to_json_counts(counts);
  }
  out["by_model"] = std::move(by_model);
  out["by_client"] = std::move(by_client);
  out["by_agent"] = std::move(by_agent);
  out["by_persona"] = std::move(by_persona);
  return out;
}

}  // namespace troupe::llm
