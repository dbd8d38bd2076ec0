# Node tests of `muse serve` (tests/server/node): the OpenAI conformance suite and the load
# test, driven by the official `openai` SDK over loopback. Included from tests/CMakeLists.txt.
# They are registered only when `node` is found and the dependencies are installed
# (`npm ci` in tests/server/node); otherwise configuring says how to enable them.
#
# MUSE_TEST_TIMEOUT_SCALE multiplies every timeout inside the tests (server start, request,
# shutdown). Set it explicitly, or it follows MUSE_SANITIZE: 10 under ThreadSanitizer, 3
# under the other sanitizers, 1 otherwise.
set(_muse_node_dir ${CMAKE_CURRENT_LIST_DIR}/node)

if(NOT DEFINED MUSE_TEST_TIMEOUT_SCALE)
  if("thread" IN_LIST MUSE_SANITIZE)
    set(MUSE_TEST_TIMEOUT_SCALE 10)
  elseif(MUSE_SANITIZE)
    set(MUSE_TEST_TIMEOUT_SCALE 3)
  else()
    set(MUSE_TEST_TIMEOUT_SCALE 1)
  endif()
endif()

find_program(MUSE_NODE_EXECUTABLE NAMES node nodejs)
# On by default so that a machine without Node.js fails loudly instead of skipping the
# server's conformance tests; -DMUSE_NODE_TESTS=OFF turns them off on purpose.
option(MUSE_NODE_TESTS "Register the Node.js server tests" ON)

if(NOT MUSE_NODE_TESTS)
  message(STATUS "Server Node tests: disabled (MUSE_NODE_TESTS=OFF)")
elseif(NOT MUSE_NODE_EXECUTABLE)
  message(FATAL_ERROR "Server Node tests: node not found (run scripts/setup, or configure with -DMUSE_NODE_TESTS=OFF)")
elseif(NOT EXISTS ${_muse_node_dir}/node_modules/openai)
  message(FATAL_ERROR "Server Node tests: run `npm ci` in ${_muse_node_dir} (scripts/setup does), or configure with -DMUSE_NODE_TESTS=OFF")
else()
  # Under a sanitizer build the server binary is the instrumented one and the tests are
  # part of `make test-sanitize` (label server-sanitize, built by sanitize_tests).
  if(MUSE_SANITIZE)
    set(_muse_node_label server-sanitize)
    set(MUSE_SANITIZE_EXTRA_TARGETS ${MUSE_SANITIZE_EXTRA_TARGETS} muse)
  else()
    set(_muse_node_label server)
  endif()
  set(_muse_node_env
    "TSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/sanitizers/tsan.supp"
    "MUSE_BIN=$<TARGET_FILE:muse>"
    "MUSE_SHARED_DIR=${MUSE_SHARED_DIR}"
    "MUSE_TEST_MODELS_DIR=${MUSE_TEST_MODELS_DIR}"
    "MUSE_TEST_TIMEOUT_SCALE=${MUSE_TEST_TIMEOUT_SCALE}")
  # CTest's own limit grows with the scale too (capped at an hour).
  math(EXPR _muse_node_timeout "600 * ${MUSE_TEST_TIMEOUT_SCALE}")
  if(_muse_node_timeout GREATER 3600)
    set(_muse_node_timeout 3600)
  endif()

  # Under ThreadSanitizer (about 10x slower) the suite runs the tests that drive the
  # server's threads: streaming, several choices, continuous batching, client aborts,
  # queue overflow, metrics, keys and shutdown. Every test runs in the other builds.
  set(_muse_conformance_filter "")
  if("thread" IN_LIST MUSE_SANITIZE)
    set(_muse_conformance_filter
        "--test-name-pattern=streaming|n=3|concurrent|abort|503|metrics|API keys|SIGTERM|response shape")
  endif()
  add_test(NAME server_conformance
           COMMAND ${MUSE_NODE_EXECUTABLE} --test --test-concurrency=1 ${_muse_conformance_filter}
                   conformance.test.mjs
           WORKING_DIRECTORY ${_muse_node_dir})
  set(_muse_node_tests server_conformance)
  # Under ThreadSanitizer (10x slower) the conformance suite alone exercises the
  # server's threads; the load and multimodal suites run in the release and ASan builds.
  if(NOT "thread" IN_LIST MUSE_SANITIZE)
    add_test(NAME server_load
             COMMAND ${MUSE_NODE_EXECUTABLE} load.mjs
             WORKING_DIRECTORY ${_muse_node_dir})
    add_test(NAME server_multimodal
             COMMAND ${MUSE_NODE_EXECUTABLE} --test --test-concurrency=1 multimodal.test.mjs
             WORKING_DIRECTORY ${_muse_node_dir})
    list(APPEND _muse_node_tests server_load server_multimodal)
  endif()
  set_tests_properties(${_muse_node_tests} PROPERTIES
                       ENVIRONMENT "${_muse_node_env}"
                       LABELS ${_muse_node_label}
                       TIMEOUT ${_muse_node_timeout}
                       # The multimodal test models (tests/e2e/CMakeLists-models.cmake).
                       FIXTURES_REQUIRED muse_test_models
                       # Both start servers on free ports and load the CPU: not side by side.
                       RUN_SERIAL TRUE)
  # The operator's side runs in the release build only: its C++ tests
  # (test_server_platform, test_mirror, test_store) cover the same code under the
  # sanitizers, and these end-to-end suites wait on wall-clock windows and timeouts
  # that a 10x slower instrumented server would only stretch.
  if(NOT MUSE_SANITIZE)
    # Keys, tiers, limits and usage on SQLite and on the `postgres` fixture's server
    # (tests/platform/CMakeLists-postgres.cmake), two replicas sharing one limit.
    add_test(NAME server_platform
             COMMAND ${MUSE_NODE_EXECUTABLE} --test --test-concurrency=1 platform.test.mjs
             WORKING_DIRECTORY ${_muse_node_dir})
    # Gateway and traffic mirroring with a slow / failing / healthy candidate.
    add_test(NAME server_mirror
             COMMAND ${MUSE_NODE_EXECUTABLE} --test --test-concurrency=1 mirror.test.mjs
             WORKING_DIRECTORY ${_muse_node_dir})
    set_tests_properties(server_platform server_mirror PROPERTIES
                         ENVIRONMENT "${_muse_node_env};MUSE_TEST_PG_URL_FILE=${MUSE_TEST_PG_URL_FILE}"
                         LABELS ${_muse_node_label}
                         TIMEOUT ${_muse_node_timeout}
                         FIXTURES_REQUIRED "postgres;muse_test_models"
                         RUN_SERIAL TRUE)
  endif()
  message(STATUS "Server Node tests: enabled (timeout scale ${MUSE_TEST_TIMEOUT_SCALE})")
endif()
