// Whole-file reads for small text inputs (configs, templates, JSON); model weights are
// memory-mapped instead (mapped_file.h).
#pragma once

#include <string>

namespace muse {

// The file's bytes. Throws muse::Error naming the path when it cannot be read.
std::string read_file(const std::string& path);

}  // namespace muse
