// The whole audio front end of a model: decode, downmix, resample, log-mel.
#include "media/audio.h"

namespace muse::media {

AudioFeatures audio_features(std::span<const uint8_t> bytes, const AudioProcessorSpec& spec,
                             const AudioLimits& limits, const std::string& format_hint) {
  const PcmAudio pcm = resample(decode_audio(bytes, limits, format_hint), spec.sample_rate);
  return whisper_log_mel(pcm.samples, spec.n_mel);
}

}  // namespace muse::media
