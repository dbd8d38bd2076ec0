#include "core/read_file.h"

#include <fstream>
#include <sstream>

#include "muse/error.h"

namespace muse {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MUSE_CHECK(in.good(), path, ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  MUSE_CHECK(!in.bad(), path, ": read error");
  return ss.str();
}

}  // namespace muse
