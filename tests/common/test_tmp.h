// Scratch files of the tests, under the build's MUSE_TEST_TMP directory.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace muse::test {

// A path for a scratch file `name`. CTest runs every test case as its own
// process, in parallel, and runs some binaries a second time with MUSE_ISA set
// (the *_isa_* entries); those get a directory per ISA, so a process never reads
// a file that the same test of another ISA wrote (files are written to a
// temporary name and renamed, so a reader never sees half a file).
inline std::string tmp_path(const std::string& name) {
  std::filesystem::path dir = MUSE_TEST_TMP;
  if (const char* isa = std::getenv("MUSE_ISA"); isa != nullptr && *isa != '\0')
    dir /= std::string("isa-") + isa;
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace muse::test
