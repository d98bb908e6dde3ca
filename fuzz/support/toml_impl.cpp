// toml++'s implementation, compiled here with the fuzz targets' flags
// instead of linked from Debian's libtomlplusplus.so: that way the TOML
// parser is instrumented too, so coverage guides the fuzzer through it to
// node_config.cpp's keys. Every other translation unit sees the
// declarations only (TOML_HEADER_ONLY=0, set by fuzz/CMakeLists.txt);
// header-only mode would drag <iomanip> into node_config.cpp, where
// std::quoted then hijacks its own quoted() by argument-dependent lookup.

#define TOML_IMPLEMENTATION
#include <toml++/toml.h>
