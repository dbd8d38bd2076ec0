#include "server/media_service.h"

#include <openssl/evp.h>

#include <algorithm>

#include "server/api_error.h"

namespace muse::server {
namespace {

// OpenAI's image "detail": "low" asks for a cheap, coarse look at the image. Muse
// caps the image at kLowDetailTokens embedding rows (the model's own limit still
// applies when it is lower); "auto" and "high" use the model's processor as is.
constexpr int64_t kLowDetailTokens = 64;

ImageProcessorSpec spec_for_detail(ImageProcessorSpec spec, const std::string& detail) {
  if (detail != "low") return spec;
  const int64_t unit = spec.patch_size * spec.merge_size;
  spec.max_pixels = std::min(spec.max_pixels, kLowDetailTokens * unit * unit);
  spec.min_pixels = std::min(spec.min_pixels, spec.max_pixels);
  if (spec.max_tokens > 0) spec.max_tokens = std::min(spec.max_tokens, kLowDetailTokens);
  return spec;
}

uint64_t content_hash(MediaPart::Kind kind, const std::string& detail,
                      const std::vector<uint8_t>& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const unsigned char tag = kind == MediaPart::Kind::Image ? 'i' : 'a';
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, &tag, 1);
  EVP_DigestUpdate(ctx, detail.data(), detail.size() + 1);  // with its terminator
  EVP_DigestUpdate(ctx, bytes.data(), bytes.size());
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  uint64_t h = 0;
  for (int i = 0; i < 8; ++i) h = (h << 8) | digest[i];
  return h;
}

ApiError media_error(const std::exception& e, const std::string& param) {
  if (dynamic_cast<const media::MediaTooLarge*>(&e))
    return ApiError(413, "invalid_request_error", e.what(), param, "media_too_large");
  return invalid_request(std::string("cannot use this media: ") + e.what(), param,
                         "invalid_media");
}

}  // namespace

MediaService::MediaService(MediaEncoders encoders, MediaServiceOptions options)
    : encoders_(std::move(encoders)),
      options_(options),
      pool_(options.n_threads > 0 ? options.n_threads : default_thread_count()) {}

EncodedMedia MediaService::encode(const MediaPart& part, const std::string& param) {
  const bool image = part.kind == MediaPart::Kind::Image;
  if (image ? !has_vision() : !has_audio())
    throw invalid_request(std::string("this model does not accept ") + (image ? "image" : "audio") +
                              " input",
                          param, "unsupported_content_type");
  const uint64_t hash =
      content_hash(part.kind, part.detail == "low" ? "low" : "", part.bytes);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = by_hash_.find(hash); it != by_hash_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++stats_.hits;
      return *it->second;
    }
    ++stats_.misses;
  }
  EncodedMedia encoded = encode_uncached(part, hash, param);
  const size_t bytes = encoded.rows->size() * sizeof(float);
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (bytes <= options_.cache_bytes && !by_hash_.count(hash)) {
    lru_.push_front(encoded);
    by_hash_[hash] = lru_.begin();
    stats_.bytes += bytes;
    while (stats_.bytes > options_.cache_bytes) {
      stats_.bytes -= lru_.back().rows->size() * sizeof(float);
      by_hash_.erase(lru_.back().hash);
      lru_.pop_back();
    }
  }
  stats_.entries = lru_.size();
  return encoded;
}

EncodedMedia MediaService::encode_uncached(const MediaPart& part, uint64_t hash,
                                           const std::string& param) {
  EncodedMedia out;
  out.kind = part.kind;
  out.hash = hash;
  try {
    if (part.kind == MediaPart::Kind::Image) {
      const VisionEncoder& enc = *encoders_.vision;
      const ImagePatches patches =
          media::preprocess_image(media::decode_image(part.bytes, options_.image),
                                  spec_for_detail(enc.processor(), part.detail));
      std::lock_guard<std::mutex> lock(encode_mu_);
      out.rows = std::make_shared<const std::vector<float>>(enc.encode(patches, pool_));
      out.n_tokens = enc.n_tokens(patches);
      const int64_t merge = std::max<int64_t>(1, enc.processor().merge_size);
      out.grid_h = patches.grid_h / merge;
      out.grid_w = patches.grid_w / merge;
    } else {
      const AudioEncoder& enc = *encoders_.audio;
      const AudioFeatures features =
          media::audio_features(part.bytes, enc.processor(), options_.audio, part.format);
      std::lock_guard<std::mutex> lock(encode_mu_);
      out.rows = std::make_shared<const std::vector<float>>(enc.encode(features, pool_));
      out.n_tokens = enc.n_tokens(features.n_frames);
    }
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw media_error(e, param);
  }
  return out;
}

MediaService::CacheStats MediaService::cache_stats() const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  return stats_;
}

}  // namespace muse::server
