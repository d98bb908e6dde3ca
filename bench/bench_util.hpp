#pragma once

// Shared by the benches: statistics over samples and the one-line JSON
// result every bench prints last (see docs/benchmarks.md).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace troupe::bench {

/// The q-quantile (0..1) of `samples` by nearest rank; 0 for none.
inline double quantile(std::vector<double> samples, double q) {
  if (samples.empty()) {
    return 0;
  }
  std::sort(samples.begin(), samples.end());
  auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(samples.size())));
  return samples[std::min(samples.size() - 1, rank == 0 ? 0 : rank - 1)];
}

inline double median(std::vector<double> samples) {
  return quantile(std::move(samples), 0.5);
}

/// Median absolute deviation: the spread that one outlier cannot move.
inline double mad(const std::vector<double>& samples) {
  const double m = median(samples);
  std::vector<double> dev;
  dev.reserve(samples.size());
  for (double s : samples) {
    dev.push_back(std::fabs(s - m));
  }
  return median(dev);
}

inline bool has_flag(int argc, char** argv, const char* flag) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], flag) == 0) {
      return true;
    }
  }
  return false;
}

/// `--name N` from the command line, else `fallback`.
inline int int_flag(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) {
      return std::stoi(argv[i + 1]);
    }
  }
  return fallback;
}

/// The argument after `flag` ("--only x" -> "x"); empty when absent.
inline std::string flag_value(int argc, char** argv, const char* flag) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], flag) == 0) {
      return argv[i + 1];
    }
  }
  return {};
}

struct result {
  std::string bench;
  double figure = 0;
  std::string unit;
  double baseline = 0;
  double ratio = 0;
  double p50 = 0;
  double p99 = 0;
  int runs = 0;
};

/// Prints the machine-readable last line.
inline void print_json(const result& r) {
  std::printf(
      "{\"bench\": \"%s\", \"figure\": %.6g, \"unit\": \"%s\", \"baseline\": %.6g, "
      "\"ratio\": %.4f, \"p50\": %.6g, \"p99\": %.6g, \"runs\": %d}\n",
      r.bench.c_str(), r.figure, r.unit.c_str(), r.baseline, r.ratio, r.p50, r.p99, r.runs);
  std::fflush(stdout);
}

}  // namespace troupe::bench
