# Multimodal test models for the server tests: for Qwen2.5-Omni (text arch qwen2vl) and
# Muse Glimmer, a GGUF pair made by Muse's own tools, written to MUSE_TEST_MODELS_DIR
# (${CMAKE_BINARY_DIR}/models):
#   omni-test.gguf / glimmer-test.gguf        random weights at the "tiny-mm" size (n_embd
#       128), the GPT-2 vocabulary with the qwen2 pre-tokenizer plus the model's special
#       tokens (control tokens, so media placeholders resolve by text), the chat template
#   omni-test-mmproj.gguf / glimmer-test-mmproj.gguf   the encoders of the golden tiny
#       checkpoints (output width 128), converted with `muse convert --mmproj`
# Included from tests/CMakeLists.txt after the per-file test targets. The Makefile builds
# the same files with the same commands (targets $(BUILD)/models/*-test*.gguf): keep the
# two in step.
#
# Built by the ALL target `muse_test_models`, by test_multimodal_test_models (a build
# dependency) and, for tests run from a build that skipped them (`--target ...`), by the
# ctest fixture `muse_test_models` (the Node server tests require it).
set(MUSE_TEST_MODELS_DIR ${CMAKE_BINARY_DIR}/models)

set(_tm_dir ${MUSE_TEST_MODELS_DIR})
set(_tm_vocab ${MUSE_SHARED_DIR}/tokenizers/ggml-vocab-gpt2-as-qwen2.gguf)
set(_tm_goldens ${MUSE_SHARED_DIR}/goldens)

# Special tokens each template renders (Omni: ChatML and its media markers; Glimmer: the
# ATEM message markers, its image/video placeholders and a BOS for `bos_token`).
set(_tm_omni_specials
    "<|im_start|>" "<|im_end|>" "<|endoftext|>" "<|AUDIO|>" "<|audio_bos|>" "<|audio_eos|>"
    "<|vision_bos|>" "<|vision_eos|>" "<|IMAGE|>" "<|VIDEO|>")
set(_tm_glimmer_specials
    "<|begin_of_text|>" "<|start|>" "<|message|>" "<|eot|>" "<|eom|>" "<|patch|>" "<|video|>")

# _muse_test_model(<name> <arch> <golden dir> <template> SPECIALS <token>... [BOS <token>] EOS <token>)
function(_muse_test_model name arch golden template)
  cmake_parse_arguments(PARSE_ARGV 4 _tm "" "BOS;EOS" "SPECIALS")
  set(_specials)
  foreach(t ${_tm_SPECIALS})
    list(APPEND _specials --add-special "${t}")
  endforeach()
  set(_bos)
  if(_tm_BOS)
    set(_bos --bos "${_tm_BOS}")
  endif()
  add_custom_command(
    OUTPUT ${_tm_dir}/${name}.gguf
    COMMAND ${CMAKE_COMMAND} -E make_directory ${_tm_dir}
    COMMAND $<TARGET_FILE:muse> debug make-model --arch ${arch} --size tiny-mm --type q8_0
            --vocab ${_tm_vocab} ${_specials} ${_bos} --eos "${_tm_EOS}"
            --chat-template ${template} -o ${_tm_dir}/${name}.gguf
    DEPENDS muse ${_tm_vocab} ${template}
    COMMENT "Writing test model ${name}.gguf"
    VERBATIM)
  # `convert` also writes the golden's text model; only the encoders are wanted.
  add_custom_command(
    OUTPUT ${_tm_dir}/${name}-mmproj.gguf
    COMMAND ${CMAKE_COMMAND} -E make_directory ${_tm_dir}
    COMMAND $<TARGET_FILE:muse> convert ${golden} -o ${_tm_dir}/${name}-golden-text.tmp.gguf
            --type f32 --mmproj ${_tm_dir}/${name}-mmproj.gguf --mmproj-type f32
    COMMAND ${CMAKE_COMMAND} -E rm -f ${_tm_dir}/${name}-golden-text.tmp.gguf
    DEPENDS muse ${golden}/config.json ${golden}/model.safetensors
    COMMENT "Writing test encoders ${name}-mmproj.gguf"
    VERBATIM)
endfunction()

_muse_test_model(omni-test qwen2vl ${_tm_goldens}/qwen25omni
                 ${PROJECT_SOURCE_DIR}/models/templates/qwen2.5-omni.jinja
                 SPECIALS ${_tm_omni_specials} EOS "<|im_end|>")
_muse_test_model(glimmer-test muse-glimmer ${_tm_goldens}/muse_glimmer
                 ${MUSE_SHARED_DIR}/templates/muse-glimmer.jinja
                 SPECIALS ${_tm_glimmer_specials} BOS "<|begin_of_text|>" EOS "<|eot|>")

set(MUSE_TEST_MODEL_FILES
    ${_tm_dir}/omni-test.gguf ${_tm_dir}/omni-test-mmproj.gguf
    ${_tm_dir}/glimmer-test.gguf ${_tm_dir}/glimmer-test-mmproj.gguf)
add_custom_target(muse_test_models ALL DEPENDS ${MUSE_TEST_MODEL_FILES})

# Tests that read the models: the ctest fixture (re)builds them first, whatever was built.
add_test(NAME muse_test_models_build
         COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target muse_test_models)
set_tests_properties(muse_test_models_build PROPERTIES FIXTURES_SETUP muse_test_models
                     LABELS e2e)

if(TARGET test_multimodal_test_models)
  add_dependencies(test_multimodal_test_models muse_test_models)
  target_compile_definitions(test_multimodal_test_models PRIVATE
                             MUSE_TEST_MODELS_DIR="${MUSE_TEST_MODELS_DIR}")
endif()
