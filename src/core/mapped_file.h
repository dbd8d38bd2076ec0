// Read-only memory-mapped file. Tensor data of GGUF and safetensors files is
// used in place (zero-copy), so the mapping lives as long as the model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace muse {

class MappedFile {
 public:
  // Throws muse::Error naming the path when the file cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  // Wraps bytes held in memory (tests, fuzzing, in-memory conversion).
  static std::shared_ptr<MappedFile> from_bytes(std::vector<uint8_t> bytes, std::string name);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  std::vector<uint8_t> owned_;  // backing store for from_bytes
  bool mapped_ = false;
};

}  // namespace muse
