// safetensors reader and writer (format: an 8-byte little-endian header length,
// a JSON header mapping names to {dtype, shape, data_offsets}, then the data).
//
// The reader validates the header like the GGUF reader: length within the file,
// valid JSON object, known dtypes, non-negative shapes without overflow, offsets
// ordered, inside the data section, non-overlapping and matching dtype*shape,
// no duplicate names. Errors are muse::Error naming the file and the problem.
// Tensor data is zero-copy (views into the mapping).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace muse {

struct SafetensorsTensor {
  std::string name;
  // view.ne is in GGUF order (reversed from the file's row-major shape);
  // view.type is F32/F16/BF16/F64/I8/I16/I32/I64 (U8/BOOL map to I8 and are
  // rejected for model weights by the loaders, not here). A tensor of rank > 4
  // (e.g. a conv3d kernel) has n_dims 4 with its outer dimensions folded into ne[3].
  TensorView view;
  std::vector<int64_t> shape;  // as written in the file (outermost first)
};

class SafetensorsFile {
 public:
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  static std::unique_ptr<SafetensorsFile> parse(std::shared_ptr<MappedFile> file);

  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(const std::string& name) const;  // nullptr if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return file_->path(); }

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model directory: model.safetensors, or the shards listed by
// model.safetensors.index.json (weight_map). Names must be unique across shards,
// and every name in the index must be present in its shard.
class SafetensorsModel {
 public:
  static std::unique_ptr<SafetensorsModel> open_dir(const std::string& dir);
  const SafetensorsTensor* find(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const SafetensorsTensor*> by_name_;
};

// Writes a safetensors file. Tensors must be plain types (F32, F16, BF16, I32, I64...).
class SafetensorsWriter {
 public:
  // shape is outermost-first (row-major, as in the file); data is copied.
  void add(const std::string& name, DType type, const std::vector<int64_t>& shape,
           const void* data, size_t nbytes);
  void set_metadata(const std::string& key, const std::string& value);
  void write(const std::string& path) const;
  std::vector<uint8_t> serialize() const;

 private:
  struct Pending {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
  };
  std::vector<Pending> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace muse
