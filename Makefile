# retrace — the two commands that matter are `make serve` and `make test`; both install any
# missing Debian packages first (as root), build, and make the models they need.
BUILD       ?= build
BUILD_TYPE  ?= RelWithDebInfo
JOBS        ?= $(shell nproc)
PYTHON      ?= /usr/bin/python3
LISTEN      ?= 127.0.0.1:50051
DATA_DIR    ?= retrace-data
MODELS      ?= $(BUILD)/models
CMAKE_FLAGS ?=
export RETRACE_SHARED_DATA ?= $(abspath ../shared/data)
# Hardening builds, each in its own folder (fuzz/README.md, README.md "Fuzzing and sanitizers").
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 25
ASAN_BUILD   ?= build-asan
TSAN_BUILD   ?= build-tsan
SANITIZERS   := $(abspath tools/sanitizers)

.PHONY: all deps configure build models serve test test-fresh soak clean fuzz fuzz-smoke test-asan \
	test-tsan docker-test

all: build

deps:
	@tools/install_deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# The demo models: small random TorchScript models with no visual knowledge (tools/fixtures).
models: deps $(BUILD)/models/.done

$(BUILD)/models/.done: $(wildcard tools/fixtures/*.py)
	@$(PYTHON) tools/fixtures/make_models.py --kind demo --out $(BUILD)/models
	@touch $@

serve: build models
	$(BUILD)/retrace-server --models $(MODELS) --data-dir $(DATA_DIR) --listen $(LISTEN)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# `make test` as a new user on a fresh machine runs it: in a new Debian 12 root with nothing but
# the checkout (tools/fresh_root.sh; needs root, about 25 minutes on 2 cores). CI runs the same.
# Run it after changing what the project installs or runs.
test-fresh:
	@tools/fresh_root.sh test

# The bounded load test of issue 6 (minutes, loopback; not part of `make test`): the maximum QPS
# of a mixed load, then 80% of it for SOAK_MINUTES (default 3) with the server's RSS watched.
# Its parameters are environment variables, listed at the top of bench/soak.sh.
soak: build models
	@BUILD=$(BUILD) MODELS=$(MODELS) bench/soak.sh

# The container image (docker/; minutes, needs root, so not part of `make test`): builds it from
# docker/Dockerfile with podman, runs it as deploy/'s pods run, and checks health, a caption, an
# index and a search through the published port with $(BUILD)/retrace (docker/README.md).
docker-test: build
	@BUILD=$(BUILD) docker/test.sh

# libFuzzer targets, built with clang, ASan and UBSan (fuzz/README.md).
fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_COMPILER=clang++ -DRETRACE_BUILD_FUZZERS=ON -DRETRACE_BUILD_TESTS=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) --target fuzzers -j $(JOBS)

# Each fuzz target for FUZZ_SECONDS over its seed corpus; fails on any crash.
fuzz-smoke: fuzz
	@fuzz/run_smoke.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# The whole build and every test under ASan + UBSan (gcc; Debian's libraries stay uninstrumented).
# The spawned servers are this build's (tests find build-asan/retrace-server); a report in a
# server's log fails its test (tests/support/server_process.cc). Leak checking is on: LibTorch,
# gRPC and OpenCV keep their globals reachable, so tools/sanitizers/lsan.supp is empty.
# detect_container_overflow keeps its default: libstdc++ annotates no container unless
# _GLIBCXX_SANITIZE_VECTOR is defined, so uninstrumented libraries cannot trip it. UBSan stops
# at the first report (-fno-sanitize-recover=undefined). The build runs the test binaries too
# (gtest_discover_tests), so it gets the same options.
ASAN_ENV = ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1:strict_init_order=1 \
	LSAN_OPTIONS=suppressions=$(SANITIZERS)/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DRETRACE_SANITIZE=address >/dev/null
	@$(ASAN_ENV) cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && $(ASAN_ENV) ctest --output-on-failure -j $(JOBS)

# The server, integration and multi-threaded tests (ctest labels integration, concurrency) under
# TSan; absl::Mutex is made visible to TSan by tools/sanitizers/tsan_absl_mutex.cc. OpenMP (FAISS,
# LibTorch) and OpenBLAS run single-threaded: their uninstrumented thread pools synchronise in
# ways TSan cannot see, retrace runs no OpenMP region of its own, and its own threads (the server's
# pool, gRPC's, the shards' searches) are what this run checks. The server sets FAISS's OpenMP
# threads from its config (threads.faiss_omp, default 1). tools/sanitizers/tsan.supp has the
# suppressions, all in third-party libraries.
TSAN_ENV = OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
	TSAN_OPTIONS=suppressions=$(SANITIZERS)/tsan.supp:halt_on_error=1:second_deadlock_stack=1
test-tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DRETRACE_SANITIZE=thread >/dev/null
	@$(TSAN_ENV) cmake --build $(TSAN_BUILD) -j $(JOBS)
	@cd $(TSAN_BUILD) && $(TSAN_ENV) ctest --output-on-failure -j $(JOBS) -L 'integration|concurrency'

clean:
	rm -rf $(BUILD)
