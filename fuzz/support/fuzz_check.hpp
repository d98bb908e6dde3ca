#pragma once

// The one check the fuzz targets use for their invariants. Not assert():
// it must hold in every build type, and its message names the invariant
// that broke, so a crash-* file found overnight explains itself.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition, invariant)                                                      \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "fuzz invariant broken: %s\n  check: %s\n  at %s:%d\n", invariant, \
                   #condition, __FILE__, __LINE__);                                           \
      std::abort();                                                                           \
    }                                                                                         \
  } while (false)
