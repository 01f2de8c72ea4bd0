# retrace — the two commands that matter are `make serve` and `make test`; both install any
# missing Debian packages first (as root), build, and make the models they need.
BUILD       ?= build
BUILD_TYPE  ?= RelWithDebInfo
JOBS        ?= $(shell nproc)
PYTHON      ?= /usr/bin/python3
LISTEN      ?= 127.0.0.1:50051
DATA_DIR    ?= retrace-data
MODELS      ?= $(BUILD)/models
export RETRACE_SHARED_DATA ?= $(abspath ../shared/data)
# The fuzz targets build in their own folder (fuzz/README.md).
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 25

.PHONY: all deps configure build models serve test clean fuzz fuzz-smoke

all: build

deps:
	@tools/install_deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null

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

# libFuzzer targets, built with clang, ASan and UBSan (fuzz/README.md).
fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_COMPILER=clang++ -DRETRACE_BUILD_FUZZERS=ON -DRETRACE_BUILD_TESTS=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) --target fuzzers -j $(JOBS)

# Each fuzz target for FUZZ_SECONDS over its seed corpus; fails on any crash.
fuzz-smoke: fuzz
	@fuzz/run_smoke.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)
