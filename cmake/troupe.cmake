# Shared build machinery: third-party packages, the troupe_flags INTERFACE
# target, and troupe_add_module(), which every folder uses to add its library.

find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${CCACHE_PROGRAM}")
endif()

set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(Boost 1.74 REQUIRED)
# Debian names the msgpack-c++ package "msgpack"; its target is msgpackc-cxx.
find_package(msgpack CONFIG REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(CLI11 REQUIRED)
find_package(RocksDB CONFIG REQUIRED)
find_package(yaml-cpp REQUIRED)
# RE2 (linear-time regular expressions) ships a pkg-config file only.
find_package(PkgConfig REQUIRED)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)

# Debian ships CAF 0.17 without a CMake config: locate it by hand.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
add_library(troupe_caf INTERFACE)
target_include_directories(troupe_caf SYSTEM INTERFACE ${CAF_INCLUDE_DIR})
target_link_libraries(troupe_caf INTERFACE ${CAF_IO_LIBRARY} ${CAF_CORE_LIBRARY} Threads::Threads)

# Flags shared by every troupe target.
add_library(troupe_flags INTERFACE)
target_compile_features(troupe_flags INTERFACE cxx_std_20)
target_compile_options(troupe_flags INTERFACE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
if(TROUPE_WERROR)
  target_compile_options(troupe_flags INTERFACE -Werror)
endif()
if(TROUPE_SANITIZE)
  # UBSan stays recoverable so scripts/ubsan.supp can silence CAF's header
  # false positives; UBSAN_OPTIONS=halt_on_error=1 makes every other report fatal.
  # Not the vptr check: it probes memory through a pipe for every type pair
  # it has not seen, so in a process out of file descriptors (which the
  # tests make the node on purpose) every virtual call is reported.
  target_compile_options(troupe_flags INTERFACE -fsanitize=address,undefined -fno-sanitize=vptr
                                                -fno-omit-frame-pointer)
  target_link_options(troupe_flags INTERFACE -fsanitize=address,undefined -fno-sanitize=vptr)
endif()
if(TROUPE_TSAN)
  if(TROUPE_SANITIZE)
    message(FATAL_ERROR "TROUPE_TSAN and TROUPE_SANITIZE cannot be combined")
  endif()
  if(CAF_CORE_LIBRARY MATCHES "^/usr/")
    message(FATAL_ERROR "TROUPE_TSAN needs a CAF built with TSan (scripts/build-tsan-caf) "
                        "on CMAKE_PREFIX_PATH; found ${CAF_CORE_LIBRARY}")
  endif()
  # -Wno-tsan: Boost.Asio's reactor uses std::atomic_thread_fence, which GCC
  # warns TSan does not model (scripts/tsan.supp says what that leads to).
  target_compile_options(troupe_flags INTERFACE -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
  target_link_options(troupe_flags INTERFACE -fsanitize=thread)
endif()
target_include_directories(troupe_flags INTERFACE ${PROJECT_SOURCE_DIR})
# Boost.Asio: no deprecated APIs, and one definition of the SSL/Beast pieces.
target_compile_definitions(troupe_flags INTERFACE BOOST_ASIO_NO_DEPRECATED)

# troupe_add_module(NAME SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
# Adds the static library troupe_<NAME> built the same way as every other one.
function(troupe_add_module name)
  cmake_parse_arguments(arg "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(troupe_${name} STATIC ${arg_SOURCES})
  target_link_libraries(troupe_${name} PUBLIC troupe_flags ${arg_PUBLIC_DEPS}
                                       PRIVATE ${arg_PRIVATE_DEPS})
endfunction()

# How much slower than the ASan build the tests run: TSan costs several
# times more. Scales test timeouts and, through the environment, the
# deadlines tests wait on conditions with (tests/support/wait.hpp).
if(TROUPE_TSAN)
  set(TROUPE_TEST_SLOWDOWN 4)
else()
  set(TROUPE_TEST_SLOWDOWN 1)
endif()

# Environment for running sanitized binaries (tests set it on every test).
set(TROUPE_SANITIZER_ENV
    "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=${PROJECT_SOURCE_DIR}/scripts/ubsan.supp"
    "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
    "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${PROJECT_SOURCE_DIR}/scripts/tsan.supp"
    "TESTS_SLOWDOWN=${TROUPE_TEST_SLOWDOWN}")
