// Whisper's log-mel spectrogram, as Hugging Face's WhisperFeatureExtractor computes
// it: centred frames (reflect padding of n_fft/2), periodic Hann window, power
// spectrum (FFTW, double), Slaney-scale and Slaney-normalised mel filters from 0 to
// 8 kHz, log10 with a 1e-10 floor, the last frame dropped, values clamped to
// (max - 8) and mapped by (x + 4) / 4.
#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <numbers>

#include "media/audio.h"

namespace muse::media {
namespace {

double hz_to_mel(double hz) {
  constexpr double kMinLogHz = 1000.0, kMinLogMel = 15.0;
  const double logstep = 27.0 / std::log(6.4);
  if (hz >= kMinLogHz) return kMinLogMel + std::log(hz / kMinLogHz) * logstep;
  return 3.0 * hz / 200.0;
}

double mel_to_hz(double mel) {
  constexpr double kMinLogHz = 1000.0, kMinLogMel = 15.0;
  const double logstep = std::log(6.4) / 27.0;
  if (mel >= kMinLogMel) return kMinLogHz * std::exp(logstep * (mel - kMinLogMel));
  return 200.0 * mel / 3.0;
}

// numpy.linspace(start, stop, n)[i].
double linspace(double start, double stop, int64_t n, int64_t i) {
  if (i == n - 1) return stop;
  return start + static_cast<double>(i) * ((stop - start) / static_cast<double>(n - 1));
}

// Triangular filters [n_mel][n_bins] (transformers.audio_utils.mel_filter_bank).
std::vector<double> mel_filters(int64_t n_mel, int64_t n_bins, double sample_rate) {
  const double mel_min = hz_to_mel(0.0), mel_max = hz_to_mel(8000.0);
  std::vector<double> edges(n_mel + 2);
  for (int64_t i = 0; i < n_mel + 2; ++i)
    edges[i] = mel_to_hz(linspace(mel_min, mel_max, n_mel + 2, i));
  std::vector<double> filters(n_mel * n_bins, 0.0);
  for (int64_t m = 0; m < n_mel; ++m) {
    const double enorm = 2.0 / (edges[m + 2] - edges[m]);
    for (int64_t b = 0; b < n_bins; ++b) {
      const double f = linspace(0.0, std::floor(sample_rate / 2), n_bins, b);
      const double down = (f - edges[m]) / (edges[m + 1] - edges[m]);
      const double up = (edges[m + 2] - f) / (edges[m + 2] - edges[m + 1]);
      filters[m * n_bins + b] = std::max(0.0, std::min(down, up)) * enorm;
    }
  }
  return filters;
}

// numpy.pad(mode="reflect") index: mirrors without repeating the edge sample,
// repeatedly for pads longer than the signal.
int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// FFTW's planner is not thread-safe; execution with new arrays is.
std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

AudioFeatures whisper_log_mel(std::span<const float> samples_16k, int64_t n_mel,
                              int64_t pad_to_samples, std::vector<int32_t>* frame_mask) {
  constexpr int64_t kFft = 400, kHop = 160, kBins = kFft / 2 + 1;
  constexpr double kSampleRate = 16000.0;
  MUSE_CHECK(n_mel > 0 && n_mel <= 512, "log-mel: invalid mel bin count ", n_mel);
  MUSE_CHECK(pad_to_samples >= 0, "log-mel: negative padding");
  const int64_t n = static_cast<int64_t>(samples_16k.size());
  // With padding the signal is cut or zero-padded to pad_to_samples (HF truncates
  // longer input to the 30 s window the same way).
  const int64_t len = pad_to_samples > 0 ? pad_to_samples : n;
  MUSE_CHECK(n > 0 && len > 0, "log-mel: empty audio");
  const int64_t valid_frames = (std::min(n, len) + kHop - 1) / kHop;
  const int64_t n_frames = pad_to_samples > 0 ? len / kHop : valid_frames;
  MUSE_CHECK(n_frames > 0, "log-mel: audio too short for one frame");
  auto sample = [&](int64_t i) -> double { return i < n ? samples_16k[i] : 0.0; };

  std::vector<double> window(kFft);
  for (int64_t k = 0; k < kFft; ++k)
    window[k] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * static_cast<double>(k) / kFft);
  const std::vector<double> filters = mel_filters(n_mel, kBins, kSampleRate);
  // Each filter is non-zero on a contiguous range of bins; skip the zeros.
  std::vector<int64_t> lo(n_mel, kBins), hi(n_mel, 0);
  for (int64_t m = 0; m < n_mel; ++m)
    for (int64_t b = 0; b < kBins; ++b)
      if (filters[m * kBins + b] != 0.0) lo[m] = std::min(lo[m], b), hi[m] = b + 1;

  struct FftwFree {
    void operator()(void* p) const { fftw_free(p); }
  };
  std::unique_ptr<double, FftwFree> in(static_cast<double*>(fftw_malloc(sizeof(double) * kFft)));
  std::unique_ptr<fftw_complex, FftwFree> spec(
      static_cast<fftw_complex*>(fftw_malloc(sizeof(fftw_complex) * kBins)));
  MUSE_CHECK(in && spec, "log-mel: out of memory");
  fftw_plan plan;
  {
    std::lock_guard lock(fftw_planner_mutex());
    plan = fftw_plan_dft_r2c_1d(static_cast<int>(kFft), in.get(), spec.get(), FFTW_ESTIMATE);
  }
  MUSE_CHECK(plan, "log-mel: cannot plan the FFT");

  std::vector<double> logmel(n_mel * n_frames);
  std::vector<double> power(kBins);
  double max_value = -std::numeric_limits<double>::infinity();
  for (int64_t t = 0; t < n_frames; ++t) {
    const int64_t start = t * kHop - kFft / 2;
    for (int64_t k = 0; k < kFft; ++k)
      in.get()[k] = sample(reflect_index(start + k, len)) * window[k];
    fftw_execute(plan);
    for (int64_t b = 0; b < kBins; ++b)
      power[b] = spec.get()[b][0] * spec.get()[b][0] + spec.get()[b][1] * spec.get()[b][1];
    for (int64_t m = 0; m < n_mel; ++m) {
      double acc = 0.0;
      for (int64_t b = lo[m]; b < hi[m]; ++b) acc += filters[m * kBins + b] * power[b];
      const double v = std::log10(std::max(acc, 1e-10));
      logmel[m * n_frames + t] = v;
      max_value = std::max(max_value, v);
    }
  }
  {
    std::lock_guard lock(fftw_planner_mutex());
    fftw_destroy_plan(plan);
  }

  AudioFeatures out;
  out.n_mel = n_mel;
  out.n_frames = n_frames;
  out.features.resize(logmel.size());
  for (size_t i = 0; i < logmel.size(); ++i)
    out.features[i] = static_cast<float>((std::max(logmel[i], max_value - 8.0) + 4.0) / 4.0);
  if (frame_mask) {
    frame_mask->assign(n_frames, 0);
    std::fill_n(frame_mask->begin(), std::min(valid_frames, n_frames), 1);
  }
  return out;
}

}  // namespace muse::media
