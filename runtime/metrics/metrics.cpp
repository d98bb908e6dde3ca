#include "runtime/metrics/metrics.hpp"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <map>
#include <mutex>
#include <variant>

namespace troupe {

// ---- histogram -------------------------------------------------------------

histogram::histogram(std::vector<double> bounds_upper)
    : bounds_(std::move(bounds_upper)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    assert(std::isfinite(bounds_[i]) && "histogram bounds must be finite; +Inf is implied");
    assert((i == 0 || bounds_[i - 1] < bounds_[i]) && "histogram bounds must strictly increase");
  }
}

void histogram::observe(double v) noexcept {
  // First bound with v <= bound. Written as !(v <= b) so that NaN lands in the
  // overflow bucket (as in the Go client) instead of the first one.
  auto it = std::partition_point(bounds_.begin(), bounds_.end(),
                                 [v](double bound) { return !(v <= bound); });
  buckets_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

uint64_t histogram::bucket_count(std::size_t i) const noexcept {
  assert(i <= bounds_.size());
  return buckets_[i].load(std::memory_order_relaxed);
}

uint64_t histogram::count() const noexcept {
  uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += bucket_count(i);
  }
  return total;
}

std::vector<double> latency_buckets_s() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1.0,   2.5,    5.0,   10.0};
}

// ---- names -----------------------------------------------------------------

namespace {

bool is_name_char(char c, bool first, bool colon_ok) noexcept {
  bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  bool digit = c >= '0' && c <= '9';
  return alpha || (colon_ok && c == ':') || (!first && digit);
}

bool matches_name(std::string_view name, bool colon_ok) noexcept {
  if (name.empty()) {
    return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_name_char(name[i], i == 0, colon_ok)) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool is_valid_metric_name(std::string_view name) noexcept {
  return matches_name(name, true);
}

bool is_valid_label_name(std::string_view name) noexcept {
  return matches_name(name, false) && !name.starts_with("__");
}

// ---- registry state --------------------------------------------------------

namespace {

enum class family_kind : uint8_t { counter, gauge, histogram };

// A gauge series is either owned (`gauge`) or read at render time (function).
using series_value = std::variant<std::unique_ptr<counter>, std::unique_ptr<gauge>,
                                  std::function<double()>, std::unique_ptr<histogram>>;

struct family {
  family_kind kind;
  std::string help;
  std::vector<double> bounds_upper;  // histogram families only
  // Keys are canonical (sorted by label name), so map order is render order.
  std::map<metric_labels, series_value> series;
};

std::string_view to_string(family_kind kind) noexcept {
  switch (kind) {
    case family_kind::counter:
      return "counter";
    case family_kind::gauge:
      return "gauge";
    case family_kind::histogram:
      return "histogram";
  }
  return "untyped";
}

metric_labels canonical(metric_labels l, family_kind kind) {
  std::sort(l.begin(), l.end());
  for (std::size_t i = 0; i < l.size(); ++i) {
    assert(is_valid_label_name(l[i].first) && "label name must match [a-zA-Z_][a-zA-Z0-9_]*");
    assert((i == 0 || l[i - 1].first != l[i].first) && "label name given twice");
    assert(!(kind == family_kind::histogram && l[i].first == "le") && "le is reserved");
  }
  (void)kind;
  return l;
}

template <class T, class Make>
T& get_or_create(family& fam, metric_labels l, Make make) {
  auto [it, inserted] = fam.series.try_emplace(canonical(std::move(l), fam.kind));
  if (inserted) {
    it->second = make();
  }
  auto* slot = std::get_if<std::unique_ptr<T>>(&it->second);
  assert(slot != nullptr && *slot != nullptr && "series exists as a different kind");
  return **slot;
}

}  // namespace

struct metrics_registry::state {
  mutable std::mutex mutex;
  std::map<std::string, family, std::less<>> families;

  family& family_for(std::string_view name, std::string_view help, family_kind kind) {
    assert(is_valid_metric_name(name) && "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*");
    auto it = families.find(name);
    if (it == families.end()) {
      it = families.emplace(std::string(name), family{kind, std::string(help), {}, {}}).first;
    }
    assert(it->second.kind == kind && "metric name already registered as a different kind");
    return it->second;
  }
};

metrics_registry::metrics_registry() : state_(std::make_unique<state>()) {}
metrics_registry::~metrics_registry() = default;

troupe::counter& metrics_registry::counter(std::string_view name, std::string_view help,
                                           metric_labels l) {
  std::lock_guard lock(state_->mutex);
  family& fam = state_->family_for(name, help, family_kind::counter);
  return get_or_create<troupe::counter>(fam, std::move(l),
                                        [] { return std::make_unique<troupe::counter>(); });
}

troupe::gauge& metrics_registry::gauge(std::string_view name, std::string_view help,
                                       metric_labels l) {
  std::lock_guard lock(state_->mutex);
  family& fam = state_->family_for(name, help, family_kind::gauge);
  return get_or_create<troupe::gauge>(fam, std::move(l),
                                      [] { return std::make_unique<troupe::gauge>(); });
}

troupe::histogram& metrics_registry::histogram(std::string_view name, std::string_view help,
                                               std::vector<double> bounds_upper, metric_labels l) {
  std::lock_guard lock(state_->mutex);
  family& fam = state_->family_for(name, help, family_kind::histogram);
  if (fam.series.empty()) {
    fam.bounds_upper = bounds_upper;
  }
  assert(fam.bounds_upper == bounds_upper && "a histogram family has one set of bounds");
  return get_or_create<troupe::histogram>(fam, std::move(l), [&] {
    return std::make_unique<troupe::histogram>(std::move(bounds_upper));
  });
}

void metrics_registry::gauge_fn(std::string_view name, std::string_view help,
                                std::function<double()> read, metric_labels l) {
  assert(read && "gauge_fn needs a callback");
  std::lock_guard lock(state_->mutex);
  family& fam = state_->family_for(name, help, family_kind::gauge);
  auto [it, inserted] = fam.series.try_emplace(canonical(std::move(l), fam.kind));
  assert((inserted || std::holds_alternative<std::function<double()>>(it->second)) &&
         "gauge_fn would replace an owned gauge");
  it->second = std::move(read);
}

// ---- rendering -------------------------------------------------------------

namespace {

// Locale-free, parseable by Prometheus (Go ParseFloat): integral values
// without exponent, others in shortest round-trip form, infinities as +Inf.
std::string format_number(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  constexpr double exact_int_max = 9007199254740992.0;  // 2^53
  if (v == std::trunc(v) && std::fabs(v) <= exact_int_max) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  assert(res.ec == std::errc{});
  return std::string(buf, res.ptr);
}

void append_escaped(std::string& out, std::string_view text, bool escape_quote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && escape_quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// `{a="x",b="y"}`, with `le` appended last for histogram buckets; nothing
// when there are no labels at all.
void append_labels(std::string& out, const metric_labels& l, std::string_view le = {}) {
  if (l.empty() && le.empty()) {
    return;
  }
  out += '{';
  for (const auto& [key, value] : l) {
    out += key;
    out += "=\"";
    append_escaped(out, value, true);
    out += "\",";
  }
  if (!le.empty()) {
    out += "le=\"";
    out += le;
    out += "\",";
  }
  out.back() = '}';
}

void append_sample(std::string& out, std::string_view name, std::string_view suffix,
                   const metric_labels& l, const std::string& value, std::string_view le = {}) {
  out += name;
  out += suffix;
  append_labels(out, l, le);
  out += ' ';
  out += value;
  out += '\n';
}

void append_histogram(std::string& out, std::string_view name, const metric_labels& l,
                      const histogram& h) {
  // Sum the per-bucket counts as read, so +Inf and _count agree even when
  // observations land mid-render.
  uint64_t cumulative = 0;
  const auto& bounds = h.bounds_upper();
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += h.bucket_count(i);
    append_sample(out, name, "_bucket", l, std::to_string(cumulative), format_number(bounds[i]));
  }
  cumulative += h.bucket_count(bounds.size());
  append_sample(out, name, "_bucket", l, std::to_string(cumulative), "+Inf");
  append_sample(out, name, "_sum", l, format_number(h.sum()));
  append_sample(out, name, "_count", l, std::to_string(cumulative));
}

void append_series(std::string& out, std::string_view name, const metric_labels& l,
                   const series_value& value) {
  if (const auto* c = std::get_if<std::unique_ptr<counter>>(&value)) {
    append_sample(out, name, "", l, std::to_string((*c)->value()));
  } else if (const auto* g = std::get_if<std::unique_ptr<gauge>>(&value)) {
    append_sample(out, name, "", l, format_number((*g)->value()));
  } else if (const auto* fn = std::get_if<std::function<double()>>(&value)) {
    append_sample(out, name, "", l, format_number((*fn)()));
  } else {
    append_histogram(out, name, l, *std::get<std::unique_ptr<histogram>>(value));
  }
}

void append_family(std::string& out, std::string_view name, const family& fam) {
  out += "# HELP ";
  out += name;
  out += ' ';
  append_escaped(out, fam.help, false);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += to_string(fam.kind);
  out += '\n';
  for (const auto& [l, value] : fam.series) {
    append_series(out, name, l, value);
  }
}

}  // namespace

std::string metrics_registry::render() const {
  std::string out;
  std::lock_guard lock(state_->mutex);
  for (const auto& [name, fam] : state_->families) {
    append_family(out, name, fam);
  }
  return out;
}

}  // namespace troupe
