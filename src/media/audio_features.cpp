// The whole audio front end of a model: decode, downmix, resample, log-mel.
#include <algorithm>

#include "media/audio.h"

namespace muse::media {

AudioFeatures audio_features(std::span<const uint8_t> bytes, const AudioProcessorSpec& spec,
                             const AudioLimits& limits, const std::string& format_hint) {
  const PcmAudio pcm = resample(decode_audio(bytes, limits, format_hint), spec.sample_rate);
  // Hugging Face pads the clip with zeros (to 30 s or 300 s) before the STFT, so the
  // last valid frames see zeros past the end rather than a reflection of the signal,
  // and the max-8 clamp is taken over the padded spectrogram. Zeros up to one window
  // past the end give the same valid frames and the same maximum (frames that are all
  // padding sit at the log floor), without computing minutes of silence.
  const auto n = static_cast<int64_t>(pcm.samples.size());
  const int64_t padded = (n + spec.n_fft + spec.hop - 1) / spec.hop * spec.hop + spec.hop;
  std::vector<int32_t> mask;
  AudioFeatures f = whisper_log_mel(pcm.samples, spec.n_mel, padded, &mask);
  const auto valid = static_cast<int64_t>(std::count(mask.begin(), mask.end(), 1));
  AudioFeatures out;
  out.n_mel = f.n_mel;
  out.n_frames = valid;
  out.features.resize(static_cast<size_t>(f.n_mel * valid));
  for (int64_t m = 0; m < f.n_mel; ++m)
    std::copy_n(f.features.begin() + m * f.n_frames, valid, out.features.begin() + m * valid);
  return out;
}

}  // namespace muse::media
