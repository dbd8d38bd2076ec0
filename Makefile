# Front door. `make run` and `make test` install what is missing (scripts/setup),
# build, and then run Muse or its whole test suite.
JOBS ?= $(shell nproc)
BUILD := build
MODEL ?= models/muse-nano.gguf
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

# Multimodal test models for the server tests (random weights at n_embd 128, a real
# vocabulary plus each model's special tokens, its chat template; encoders of the golden
# tiny checkpoints). The test build writes the same files with the same commands
# (tests/e2e/CMakeLists-models.cmake): keep the two in step.
VOCAB := $(SHARED)/tokenizers/ggml-vocab-gpt2-as-qwen2.gguf
OMNI_SPECIALS := <|im_start|> <|im_end|> <|endoftext|> <|AUDIO|> <|audio_bos|> <|audio_eos|> \
  <|vision_bos|> <|vision_eos|> <|IMAGE|> <|VIDEO|>
GLIMMER_SPECIALS := <|begin_of_text|> <|start|> <|message|> <|eot|> <|eom|> <|patch|> <|video|>
TEST_MODELS := $(addprefix $(BUILD)/models/,omni-test.gguf omni-test-mmproj.gguf \
  glimmer-test.gguf glimmer-test-mmproj.gguf)

.PHONY: test-models
test-models: $(TEST_MODELS)

$(BUILD)/models/omni-test.gguf: build
	@mkdir -p $(dir $@)
	$(BUILD)/bin/muse debug make-model --arch qwen2vl --size tiny-mm --type q8_0 --vocab $(VOCAB) \
	  $(foreach t,$(OMNI_SPECIALS),--add-special '$(t)') --eos '<|im_end|>' \
	  --chat-template models/templates/qwen2.5-omni.jinja -o $@

$(BUILD)/models/glimmer-test.gguf: build
	@mkdir -p $(dir $@)
	$(BUILD)/bin/muse debug make-model --arch muse-glimmer --size tiny-mm --type q8_0 --vocab $(VOCAB) \
	  $(foreach t,$(GLIMMER_SPECIALS),--add-special '$(t)') --bos '<|begin_of_text|>' --eos '<|eot|>' \
	  --chat-template $(SHARED)/templates/muse-glimmer.jinja -o $@

# `convert` also writes the golden's text model; only the encoders are kept.
$(BUILD)/models/omni-test-mmproj.gguf: build
	@mkdir -p $(dir $@)
	$(BUILD)/bin/muse convert $(SHARED)/goldens/qwen25omni -o $@.text.tmp --type f32 \
	  --mmproj $@ --mmproj-type f32
	@rm -f $@.text.tmp

$(BUILD)/models/glimmer-test-mmproj.gguf: build
	@mkdir -p $(dir $@)
	$(BUILD)/bin/muse convert $(SHARED)/goldens/muse_glimmer -o $@.text.tmp --type f32 \
	  --mmproj $@ --mmproj-type f32
	@rm -f $@.text.tmp

# The default model is Muse Nano (models/muse-nano.gguf, trained by train/: text, images
# of shapes, speech; docs/muse-nano.md). MODEL=path serves another GGUF or HF directory.
run: build
	$(BUILD)/bin/muse serve --model $(MODEL) --model-alias muse-nano --host $(HOST) --port $(PORT)

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
