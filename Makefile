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

.PHONY: all deps configure build models serve test soak clean

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

# The bounded load test of issue 6 (minutes, loopback; not part of `make test`): the maximum QPS
# of a mixed load, then 80% of it for SOAK_MINUTES (default 3) with the server's RSS watched.
# Its parameters are environment variables, listed at the top of bench/soak.sh.
soak: build models
	@BUILD=$(BUILD) MODELS=$(MODELS) bench/soak.sh

clean:
	rm -rf $(BUILD)
