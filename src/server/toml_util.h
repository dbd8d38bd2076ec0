// Small helpers shared by the TOML config readers (serve_config.cpp, mirror_config.cpp).
#pragma once

#include <sstream>
#include <string>
#include <toml++/toml.h>

namespace muse::server {

// "string", "integer", "table", ... for error messages.
inline std::string toml_type_name(const toml::node& node) {
  std::ostringstream os;
  os << node.type();
  return os.str();
}

}  // namespace muse::server
