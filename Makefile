# Front door. `make run` and `make test` install what is missing (scripts/setup),
# build, and then run Muse or its whole test suite.
JOBS ?= $(shell nproc)
BUILD := build
MODEL ?= $(BUILD)/models/tiny-qwen2.gguf
export CCACHE_DIR ?= $(HOME)/.cache/ccache

.PHONY: all setup build run test test-fast test-sanitize clean

all: build

setup:
	@scripts/setup

build: setup
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

$(MODEL): build
	@mkdir -p $(dir $(MODEL))
	$(BUILD)/bin/muse debug make-model --arch qwen2 --size tiny --type q8_0 -o $(MODEL)

run: build $(MODEL)
	$(BUILD)/bin/muse run --model $(MODEL) --prompt-ids 1,2,3,4 -n 32

test: build test-sanitize
	ctest --preset release -j $(JOBS)

test-fast: build
	ctest --preset release -j $(JOBS) -L "unit|kernels"

# The tests labelled `sanitize` (malformed-file suites) under ASan + UBSan.
test-sanitize: setup
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS) --target sanitize_tests
	ctest --preset asan -j $(JOBS)

clean:
	rm -rf build build-debug build-asan
