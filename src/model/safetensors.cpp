// safetensors reader and writer. File layout: uint64 little-endian N, N bytes of JSON
// (an object mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]},
// plus an optional "__metadata__" string->string object), then the data section, to
// which the offsets are relative.
#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "muse/error.h"

namespace muse {

namespace detail {
// Defined in gguf.cpp: temporary file + rename.
void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes);
}  // namespace detail

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The reference implementation refuses headers above 100 MB; so do we, so that a
// corrupt length cannot make us parse (or allocate for) gigabytes of "JSON".
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Valid headers nest three deep (object -> tensor object -> shape list).
constexpr int kMaxJsonDepth = 8;
constexpr int kMaxDims = 4;
constexpr const char* kMetadataKey = "__metadata__";

struct StDType {
  const char* name;
  DType type;
  size_t size;
};

constexpr StDType kDTypes[] = {
    {"F64", DType::F64, 8},   {"F32", DType::F32, 4}, {"F16", DType::F16, 2},
    {"BF16", DType::BF16, 2}, {"I64", DType::I64, 8}, {"I32", DType::I32, 4},
    {"I16", DType::I16, 2},   {"I8", DType::I8, 1},   {"U8", DType::I8, 1},
    {"BOOL", DType::I8, 1},
};

const StDType* find_dtype(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

// The canonical safetensors name of a DType (the first table entry that maps to it).
const StDType* dtype_for_writing(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return &d;
  return nullptr;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Element count * element size without overflow; false when it does not fit.
bool checked_nbytes(const std::vector<int64_t>& shape, size_t elem_size, uint64_t* nbytes) {
  uint64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  return !__builtin_mul_overflow(n, uint64_t{elem_size}, nbytes);
}

// Parses JSON text, rejecting duplicate object keys (nlohmann would silently keep
// the last one) and excessive nesting. `where` prefixes error messages. Duplicates
// among the top-level keys are reported as `top_level_noun` ("tensor name").
json parse_json_strict(const char* begin, const char* end, const std::string& where,
                       const char* top_level_noun) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  int duplicate_depth = 0;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth)
          throw Error(
              str_cat(where, ": JSON header is nested deeper than ", kMaxJsonDepth, " levels"));
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string() &&
            !open_objects.back().insert(parsed.get_ref<const std::string&>()).second &&
            duplicate.empty()) {
          duplicate = parsed.get<std::string>();
          duplicate_depth = depth;
        }
        break;
      default:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(begin, end, callback, /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    throw Error(str_cat(where, ": invalid JSON header: ", e.what()));
  }
  if (!duplicate.empty()) {
    if (duplicate_depth == 1)
      throw Error(str_cat(where, ": duplicate ", top_level_noun, " '", duplicate, "'"));
    throw Error(str_cat(where, ": duplicate key '", duplicate, "' in the JSON header"));
  }
  return j;
}

template <typename... Args>
[[noreturn]] void fail_with_path(const std::string& path, Args&&... args) {
  throw Error(str_cat(path, ": ", std::forward<Args>(args)...));
}

// A JSON value that is a non-negative integer, as uint64.
bool as_unsigned(const json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;
  *out = v.get<uint64_t>();
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// SafetensorsFile

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  return parse(MappedFile::open(path));
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::parse(std::shared_ptr<MappedFile> file) {
  MUSE_CHECK(file != nullptr, "SafetensorsFile::parse: no file");
  auto st = std::make_unique<SafetensorsFile>();
  st->file_ = std::move(file);
  const std::string& path = st->file_->path();
  const uint8_t* base = st->file_->data();
  const uint64_t file_size = st->file_->size();
  auto fail = [&](auto&&... args) { fail_with_path(path, args...); };

  if (file_size < 8)
    fail("file too small (", file_size, " bytes) to hold the 8-byte header length");
  uint64_t header_len = 0;
  std::memcpy(&header_len, base, 8);
  if (header_len == 0) fail("header length is 0 (empty JSON header)");
  if (header_len > file_size - 8)
    fail("header length ", header_len, " extends past the end of the file (", file_size, " bytes)");
  if (header_len > kMaxHeaderBytes)
    fail("header length ", header_len, " is absurdly large (limit ", kMaxHeaderBytes, ")");
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file_size - data_start;

  const char* text = reinterpret_cast<const char*>(base + 8);
  // nlohmann's parser stops at a NUL as if the input ended; valid JSON never has one.
  if (std::memchr(text, 0, header_len) != nullptr)
    fail("invalid JSON header: it contains a NUL byte");
  const json header = parse_json_strict(text, text + header_len, path, "tensor name");
  if (!header.is_object()) fail("header is not a JSON object (it is a ", header.type_name(), ")");

  struct Entry {
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (const auto& [name, e] : header.items()) {
    if (name == kMetadataKey) {
      if (!e.is_object()) fail("__metadata__ is not a JSON object");
      for (const auto& [k, v] : e.items()) {
        if (!v.is_string()) fail("__metadata__ value for key '", k, "' is not a string");
        st->metadata_.emplace(k, v.get<std::string>());
      }
      continue;
    }
    const std::string where = str_cat("tensor '", name, "'");
    if (!e.is_object()) fail(where, " entry is not a JSON object");

    const auto dt = e.find("dtype");
    if (dt == e.end()) fail(where, " is missing 'dtype'");
    if (!dt->is_string()) fail(where, " dtype is not a string");
    const StDType* dtype = find_dtype(dt->get<std::string>());
    if (dtype == nullptr) fail(where, " has an unknown dtype '", dt->get<std::string>(), "'");

    const auto sh = e.find("shape");
    if (sh == e.end()) fail(where, " is missing 'shape'");
    if (!sh->is_array()) fail(where, " shape is not a list");
    std::vector<int64_t> shape;
    for (const auto& d : *sh) {
      uint64_t dim = 0;
      if (d.is_number_integer() && !d.is_number_unsigned())
        fail(where, " shape has a negative dimension ", d.get<int64_t>());
      if (!as_unsigned(d, &dim)) fail(where, " shape entry ", d.dump(), " is not an integer");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(where, " shape ", sh->dump(), " overflows");
      shape.push_back(static_cast<int64_t>(dim));
    }
    uint64_t nbytes = 0;
    if (!checked_nbytes(shape, dtype->size, &nbytes))
      fail(where, " shape ", shape_text(shape), " overflows");

    const auto off = e.find("data_offsets");
    if (off == e.end()) fail(where, " is missing 'data_offsets'");
    uint64_t begin = 0, end = 0;
    if (!off->is_array() || off->size() != 2 || !as_unsigned((*off)[0], &begin) ||
        !as_unsigned((*off)[1], &end))
      fail(where, " data_offsets ", off->dump(), " must be a list of two non-negative integers");
    if (begin > end) fail(where, " data_offsets [", begin, ", ", end, "] are reversed");
    if (end > data_size)
      fail(where, " data_offsets [", begin, ", ", end,
           "] extend past the end of the data section (", data_size, " bytes)");
    if (end - begin != nbytes)
      fail(where, " size mismatch: data_offsets [", begin, ", ", end, "] hold ", end - begin,
           " bytes but dtype ", dtype->name, " and shape ", shape_text(shape), " need ", nbytes);

    SafetensorsTensor t;
    t.name = name;
    t.shape = shape;
    t.view.type = dtype->type;
    // TensorView holds four dimensions; a higher-rank tensor (a conv3d kernel) keeps
    // its three innermost and folds the outer ones into ne[3]. `shape` has them all.
    const size_t rank = shape.size();
    t.view.n_dims = static_cast<int>(std::min<size_t>(rank, kMaxDims));
    for (size_t i = 0; i < rank; ++i) {
      if (i < kMaxDims)
        t.view.ne[i] = shape[rank - 1 - i];
      else
        t.view.ne[kMaxDims - 1] *= shape[rank - 1 - i];
    }
    t.view.data = base + data_start + begin;
    t.view.nbytes = static_cast<size_t>(nbytes);
    st->tensors_.push_back(std::move(t));
    entries.push_back(Entry{begin, end});
  }

  // File order; then no two non-empty tensors may share bytes.
  std::vector<size_t> order(entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return entries[a].begin != entries[b].begin ? entries[a].begin < entries[b].begin
                                                : st->tensors_[a].name < st->tensors_[b].name;
  });
  size_t prev = SIZE_MAX;
  for (size_t i : order) {
    if (entries[i].begin == entries[i].end) continue;
    if (prev != SIZE_MAX && entries[prev].end > entries[i].begin)
      fail("tensor '", st->tensors_[i].name, "' data_offsets [", entries[i].begin, ", ",
           entries[i].end, "] overlap tensor '", st->tensors_[prev].name, "' [",
           entries[prev].begin, ", ", entries[prev].end, "]");
    prev = i;
  }
  std::vector<SafetensorsTensor> sorted;
  sorted.reserve(order.size());
  for (size_t i : order) sorted.push_back(std::move(st->tensors_[i]));
  st->tensors_ = std::move(sorted);
  for (size_t i = 0; i < st->tensors_.size(); ++i) st->index_.emplace(st->tensors_[i].name, i);
  return st;
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------------------
// SafetensorsModel

std::unique_ptr<SafetensorsModel> SafetensorsModel::open_dir(const std::string& dir) {
  auto model = std::make_unique<SafetensorsModel>();
  const fs::path root(dir);
  const fs::path single = root / "model.safetensors";
  const fs::path index_path = root / "model.safetensors.index.json";
  std::error_code ec;

  // Shard files in load order, and the file each tensor came from.
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> listed;  // tensor -> shard file, from the index

  if (fs::is_regular_file(single, ec)) {
    model->shards_.push_back(SafetensorsFile::open(single.string()));
    shard_names.push_back("model.safetensors");
  } else if (fs::is_regular_file(index_path, ec)) {
    const std::string where = index_path.string();
    auto mapped = MappedFile::open(where);
    const char* text = reinterpret_cast<const char*>(mapped->data());
    const json index = parse_json_strict(text, text + mapped->size(), where, "key");
    MUSE_CHECK(index.is_object(), where, ": not a JSON object");
    const auto wm = index.find("weight_map");
    MUSE_CHECK(wm != index.end() && wm->is_object(), where, ": missing 'weight_map' object");
    std::map<std::string, size_t> shard_index;
    for (const auto& [name, file_value] : wm->items()) {
      MUSE_CHECK(file_value.is_string(), where, ": weight_map entry for '", name,
                 "' is not a string");
      const std::string file = file_value.get<std::string>();
      if (!shard_index.count(file)) {
        // Shards must be named by a path inside the model directory. The check is
        // lexical on purpose: in the Hugging Face cache every file is a symlink to a
        // blob elsewhere, and following those is fine.
        const fs::path rel(file);
        bool escapes = file.empty() || rel.has_root_path();
        for (const auto& part : rel)
          if (part == "..") escapes = true;
        const fs::path full = root / rel;
        MUSE_CHECK(!escapes, where, ": shard '", file, "' (for tensor '", name,
                   "') is outside the model directory");
        MUSE_CHECK(fs::is_regular_file(full, ec), where, ": shard '", file, "' (for tensor '", name,
                   "') does not exist");
        shard_index.emplace(file, model->shards_.size());
        model->shards_.push_back(SafetensorsFile::open(full.string()));
        shard_names.push_back(file);
      }
      listed.emplace(name, file);
    }
    for (const auto& [name, file] : listed) {
      const auto& shard = model->shards_[shard_index.at(file)];
      MUSE_CHECK(shard->find(name) != nullptr, where, ": tensor '", name, "' is listed in shard '",
                 file, "' but that file does not contain it");
    }
  } else {
    throw Error(str_cat(dir, ": no model.safetensors or model.safetensors.index.json"));
  }

  std::map<std::string, size_t> owner;
  for (size_t s = 0; s < model->shards_.size(); ++s) {
    for (const auto& t : model->shards_[s]->tensors()) {
      auto [it, inserted] = owner.emplace(t.name, s);
      MUSE_CHECK(inserted, dir, ": tensor '", t.name, "' is in two shards ('",
                 shard_names[it->second], "' and '", shard_names[s], "')");
      model->by_name_.emplace(t.name, &t);
    }
  }
  return model;
}

const SafetensorsTensor* SafetensorsModel::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> SafetensorsModel::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& kv : by_name_) out.push_back(kv.first);
  return out;
}

// ---------------------------------------------------------------------------
// SafetensorsWriter

void SafetensorsWriter::add(const std::string& name, DType type, const std::vector<int64_t>& shape,
                            const void* data, size_t nbytes) {
  MUSE_CHECK(name != kMetadataKey, "SafetensorsWriter: '", name, "' is reserved");
  for (const auto& t : tensors_)
    MUSE_CHECK(t.name != name, "SafetensorsWriter: duplicate tensor name '", name, "'");
  const StDType* dtype = dtype_for_writing(type);
  MUSE_CHECK(dtype != nullptr, "SafetensorsWriter: tensor '", name, "': type ", dtype_name(type),
             " cannot be stored in safetensors");
  uint64_t expected = 0;
  MUSE_CHECK(checked_nbytes(shape, dtype->size, &expected), "SafetensorsWriter: tensor '", name,
             "' shape ", shape_text(shape), " is negative or overflows");
  MUSE_CHECK(nbytes == expected, "SafetensorsWriter: tensor '", name, "' has ", nbytes,
             " bytes of data, dtype ", dtype->name, " and shape ", shape_text(shape), " need ",
             expected);
  MUSE_CHECK(data != nullptr || nbytes == 0, "SafetensorsWriter: tensor '", name, "' has no data");
  const auto* bytes = static_cast<const uint8_t*>(data);
  tensors_.push_back(Pending{name, type, shape, std::vector<uint8_t>(bytes, bytes + nbytes)});
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

std::vector<uint8_t> SafetensorsWriter::serialize() const {
  // ordered_json keeps the tensors in the order they were added (= data order).
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    header[kMetadataKey] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    nlohmann::ordered_json entry;
    entry["dtype"] = dtype_for_writing(t.type)->name;
    entry["shape"] = t.shape;
    entry["data_offsets"] = {offset, offset + t.data.size()};
    header[t.name] = std::move(entry);
    offset += t.data.size();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(str_cat("SafetensorsWriter: cannot encode the header: ", e.what()));
  }
  // The reference implementation pads the header with spaces to a multiple of 8 so
  // that the data section starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::vector<uint8_t> out(8 + text.size() + offset);
  const uint64_t header_len = text.size();
  std::memcpy(out.data(), &header_len, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  size_t at = 8 + text.size();
  for (const auto& t : tensors_) {
    if (!t.data.empty()) std::memcpy(out.data() + at, t.data.data(), t.data.size());
    at += t.data.size();
  }
  return out;
}

void SafetensorsWriter::write(const std::string& path) const {
  detail::write_file_atomically(path, serialize());
}

}  // namespace muse
