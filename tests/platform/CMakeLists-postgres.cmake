# A real PostgreSQL server for the store tests (issue 8): the CTest fixture `postgres`
# starts a throwaway cluster (scripts/test-postgres) in the build tree before the tests
# that need it and removes it after them. Tests find its URL in the file named by the
# environment variable MUSE_TEST_PG_URL_FILE. Included from tests/CMakeLists.txt before
# the test loop.
#
# For gtest_discover_tests executables (whose test names are known only after building),
# pass ${MUSE_POSTGRES_TEST_PROPERTIES} right after PROPERTIES; for tests added with
# add_test, call muse_requires_postgres(name...).
set(MUSE_TEST_PG_DIR ${CMAKE_BINARY_DIR}/pg)
set(MUSE_TEST_PG_URL_FILE ${MUSE_TEST_PG_DIR}/url)
# Test executables (file names) that need the server: the store's tests, and the
# server's platform tests (shared rate limits across replicas).
set(MUSE_POSTGRES_TEST_PATTERN "^test_store$|^test_server_platform|_pg$")
set(MUSE_POSTGRES_TEST_PROPERTIES
    FIXTURES_REQUIRED postgres
    ENVIRONMENT "MUSE_TEST_PG_URL_FILE=${MUSE_TEST_PG_URL_FILE}")

add_test(NAME postgres_start
         COMMAND ${PROJECT_SOURCE_DIR}/scripts/test-postgres start ${MUSE_TEST_PG_DIR})
add_test(NAME postgres_stop
         COMMAND ${PROJECT_SOURCE_DIR}/scripts/test-postgres stop ${MUSE_TEST_PG_DIR})
set_tests_properties(postgres_start PROPERTIES FIXTURES_SETUP postgres TIMEOUT 120
                     LABELS platform)
set_tests_properties(postgres_stop PROPERTIES FIXTURES_CLEANUP postgres TIMEOUT 60
                     LABELS platform)

function(muse_requires_postgres)
  foreach(test_name ${ARGN})
    set_property(TEST ${test_name} APPEND PROPERTY FIXTURES_REQUIRED postgres)
    set_property(TEST ${test_name} APPEND PROPERTY ENVIRONMENT
                 "MUSE_TEST_PG_URL_FILE=${MUSE_TEST_PG_URL_FILE}")
  endforeach()
endfunction()
