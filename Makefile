# Front door. `make run` and `make test` install what is missing (scripts/setup),
# build, and then run Muse or its whole test suite.
JOBS ?= $(shell nproc)
BUILD := build
MODEL ?= $(BUILD)/models/tiny-chat.gguf
HOST ?= 127.0.0.1
PORT ?= 8080
SHARED ?= ../shared
export CCACHE_DIR ?= $(HOME)/.cache/ccache
# Paths relative to the checkout, so that clones in other folders share cache hits.
export CCACHE_BASEDIR ?= $(CURDIR)

.PHONY: all setup build run test test-fast test-sanitize clean

all: build

setup:
	@scripts/setup

build: setup
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

$(MODEL): build
	@mkdir -p $(dir $(MODEL))
	$(BUILD)/bin/muse debug make-model --arch qwen2 --size tiny --type q8_0 \
	  --vocab $(SHARED)/tokenizers/ggml-vocab-gpt2-as-qwen2.gguf \
	  --chat-template $(SHARED)/templates/Qwen-Qwen2.5-7B-Instruct.jinja -o $(MODEL)

# Until a trained default model ships (issue 7), the server runs a random-weight model
# with a real vocabulary and chat template: every API feature works, the text is noise.
run: build $(MODEL)
	$(BUILD)/bin/muse serve --model $(MODEL) --model-alias muse-default --host $(HOST) --port $(PORT)

test: build test-sanitize
	ctest --preset release -j $(JOBS)

test-fast: build
	ctest --preset release -j $(JOBS) -L "unit|kernels"

# The tests labelled `sanitize` under ASan + UBSan (malformed-file suites, the server's
# conformance and load tests), then the engine and server tests under ThreadSanitizer.
test-sanitize: setup
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS) --target sanitize_tests
	ctest --preset asan -j $(JOBS)
	@cmake --preset tsan >/dev/null
	@cmake --build --preset tsan -j $(JOBS) --target sanitize_tests
	ctest --preset tsan

clean:
	rm -rf build build-debug build-asan build-tsan
