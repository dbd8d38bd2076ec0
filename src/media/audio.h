// Audio decoding (WAV PCM 8/16/24/32-bit and float, MP3, FLAC, OGG Vorbis/Opus),
// downmix, resampling to the model's rate, and Whisper's log-mel features.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "media/media_error.h"
#include "model/media_encoder.h"

namespace muse::media {

struct AudioLimits {
  int64_t max_bytes = 50 << 20;
  double max_seconds = 600.0;  // checked from the header and again while decoding
};

// Mono float samples in [-1, 1] at `sample_rate`.
struct PcmAudio {
  int64_t sample_rate = 0;
  std::vector<float> samples;
};

// Decodes any supported container (detected from the bytes; `format_hint` such as
// "wav" or "mp3" is only used in error messages), downmixes to mono.
PcmAudio decode_audio(std::span<const uint8_t> bytes, const AudioLimits& limits = {},
                      const std::string& format_hint = "");

// High-quality resampling (libsoxr) to `rate`; returns the input when equal.
PcmAudio resample(const PcmAudio& audio, int64_t rate);

// Whisper's feature extractor (n_fft 400, hop 160, periodic Hann, Slaney mel,
// log10, clamp to max - 8, (x + 4) / 4) on 16 kHz samples. Without padding the
// result has ceil(n / hop) frames (the valid frames). With pad_to_samples > 0 the
// signal is zero-padded to that many samples first (Whisper's 30 s =
// 480000) and `frame_mask` (if not null) receives 1 for valid frames, 0 for padding.
AudioFeatures whisper_log_mel(std::span<const float> samples_16k, int64_t n_mel,
                              int64_t pad_to_samples = 0,
                              std::vector<int32_t>* frame_mask = nullptr);

// Decode + resample + features for a model's audio encoder.
AudioFeatures audio_features(std::span<const uint8_t> bytes, const AudioProcessorSpec& spec,
                             const AudioLimits& limits = {}, const std::string& format_hint = "");

}  // namespace muse::media
