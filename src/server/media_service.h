// The media side of a served model: its encoders (from the mmproj file or the
// model's Hugging Face directory), a thread pool to run them, and a cache of
// encoder outputs keyed by content hash, so a conversation that sends the same
// image or clip turn after turn encodes it once.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/thread_pool.h"
#include "media/audio.h"
#include "media/image.h"
#include "model/media_encoder.h"
#include "server/media_parts.h"

namespace muse::server {

// One image or clip, encoded: rows for the decoder plus what its prompt span needs.
struct EncodedMedia {
  MediaPart::Kind kind = MediaPart::Kind::Image;
  std::shared_ptr<const std::vector<float>> rows;  // [n_tokens][n_embd]
  int64_t n_tokens = 0;
  int64_t grid_h = 0, grid_w = 0;  // merged image grid (0 for audio)
  uint64_t hash = 0;               // of the kind and the encoded bytes
};

struct MediaServiceOptions {
  media::ImageLimits image;
  media::AudioLimits audio;
  int n_threads = 0;                       // encoder threads (0 = default)
  size_t cache_bytes = size_t{256} << 20;  // encoder outputs kept for reuse
};

class MediaService {
 public:
  MediaService(MediaEncoders encoders, MediaServiceOptions options);

  bool has_vision() const { return encoders_.vision != nullptr; }
  bool has_audio() const { return encoders_.audio != nullptr; }

  // Decodes, preprocesses and encodes one part (or returns the cached result).
  // Throws ApiError naming `param`: 400 for undecodable media or a kind the model
  // has no encoder for, 413 for media over a limit.
  EncodedMedia encode(const MediaPart& part, const std::string& param);

  struct CacheStats {
    uint64_t hits = 0, misses = 0;
    size_t entries = 0, bytes = 0;
  };
  CacheStats cache_stats() const;

 private:
  EncodedMedia encode_uncached(const MediaPart& part, uint64_t hash, const std::string& param);

  MediaEncoders encoders_;
  MediaServiceOptions options_;
  std::mutex encode_mu_;  // one encoding at a time on the pool
  ThreadPool pool_;
  mutable std::mutex cache_mu_;
  std::list<EncodedMedia> lru_;  // most recent first
  std::unordered_map<uint64_t, std::list<EncodedMedia>::iterator> by_hash_;
  CacheStats stats_;
};

}  // namespace muse::server
