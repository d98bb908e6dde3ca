# The two commands: `make run` and `make test`. See README.md.
JOBS ?= 2
DEBUG_DIR ?= build/debug
RELEASE_DIR ?= build/release
# ThreadSanitizer build (`make tsan`), with a CAF of its own built with TSan.
TSAN_DIR ?= build/tsan
TSAN_CAF_DIR ?= build/tsan-caf
# Fuzzing (fuzz/README.md): clang + libFuzzer, a build of its own.
FUZZ_DIR ?= build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGET ?=
FUZZ_CMAKE := cmake -S fuzz -B $(FUZZ_DIR) -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
# CI treats warnings in troupe's own code as errors.
WERROR := $(if $(CI),ON,OFF)

.PHONY: all deps release run test tsan fuzz bench fmt tidy clean

all: release

deps:
	@scripts/install-deps

release: deps
	@cmake -S . -B $(RELEASE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DTROUPE_BUILD_TESTS=OFF -DTROUPE_BUILD_BENCH=ON -DTROUPE_WERROR=$(WERROR) > /dev/null
	@cmake --build $(RELEASE_DIR) -j $(JOBS) --target troupe-node troupectl troupe-mock-upstream

# Starts a node on the embedded defaults (configs/node.toml): state in ./data,
# gateway on 127.0.0.1:7700. Ctrl-C stops it gracefully.
run: release
	@echo "troupectl: $(RELEASE_DIR)/apps/troupectl (token in ./data/token)"
	@exec $(RELEASE_DIR)/apps/troupe-node --config configs/node.toml

# Debug build with ASan+UBSan, then every test (unit, integration, bench
# smoke), then each fuzz target briefly over its seed corpus.
test: deps
	@cmake -S . -B $(DEBUG_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTROUPE_SANITIZE=ON \
	  -DTROUPE_BUILD_TESTS=ON -DTROUPE_BUILD_BENCH=ON -DTROUPE_WERROR=$(WERROR) > /dev/null
	@cmake --build $(DEBUG_DIR) -j $(JOBS)
	@cd $(DEBUG_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300
	@$(FUZZ_CMAKE) > /dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS)
	@cd $(FUZZ_DIR) && ctest --output-on-failure -j $(JOBS)

# The test suite under ThreadSanitizer (scripts/tsan.supp says what is
# suppressed and why). Not part of `make test`: it takes a CAF build of its
# own and runs several times slower.
tsan: deps
	@JOBS=$(JOBS) scripts/build-tsan-caf $(abspath $(TSAN_CAF_DIR))
	@cmake -S . -B $(TSAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
	  -DTROUPE_TSAN=ON -DCMAKE_PREFIX_PATH=$(abspath $(TSAN_CAF_DIR))/prefix \
	  -DTROUPE_BUILD_TESTS=ON -DTROUPE_BUILD_BENCH=ON -DTROUPE_WERROR=$(WERROR) > /dev/null
	@cmake --build $(TSAN_DIR) -j $(JOBS)
	@cd $(TSAN_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 1200

# Each fuzz target for FUZZ_SECONDS; FUZZ_TARGET=fuzz_sse runs one.
fuzz: deps
	@$(FUZZ_CMAKE) > /dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS)
	@scripts/run-fuzz $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGET)

# Benchmarks (Release). NAME=runtime_messaging runs one.
bench: release
	@cmake --build $(RELEASE_DIR) -j $(JOBS)
	@scripts/run-benches $(RELEASE_DIR) $(NAME)

fmt:
	@git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

tidy:
	@git ls-files 'runtime/*.cpp' 'actors/*.cpp' 'apps/*.cpp' | \
	  xargs clang-tidy -p $(DEBUG_DIR) --quiet

clean:
	@rm -rf build
