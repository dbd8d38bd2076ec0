// Audio decoding with libsndfile from memory (virtual I/O), downmix to mono, and
// resampling with libsoxr. Limits: encoded bytes, and duration from the header
// before decoding and again while decoding (a header may lie about the length).
#include <sndfile.h>
#include <soxr.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "media/audio.h"

namespace muse::media {
namespace {

struct MemoryFile {
  const uint8_t* data;
  sf_count_t size, pos;
};

sf_count_t vio_length(void* user) {
  return static_cast<MemoryFile*>(user)->size;
}

sf_count_t vio_seek(sf_count_t offset, int whence, void* user) {
  auto* f = static_cast<MemoryFile*>(user);
  sf_count_t base = 0;
  if (whence == SEEK_CUR) base = f->pos;
  if (whence == SEEK_END) base = f->size;
  const sf_count_t target = base + offset;
  if (target < 0) return -1;
  f->pos = std::min(target, f->size);
  return f->pos;
}

sf_count_t vio_read(void* out, sf_count_t n, void* user) {
  auto* f = static_cast<MemoryFile*>(user);
  const sf_count_t take = std::max<sf_count_t>(0, std::min(n, f->size - f->pos));
  std::memcpy(out, f->data + f->pos, static_cast<size_t>(take));
  f->pos += take;
  return take;
}

sf_count_t vio_write(const void*, sf_count_t, void*) {
  return 0;
}

sf_count_t vio_tell(void* user) {
  return static_cast<MemoryFile*>(user)->pos;
}

std::string label(const std::string& hint) {
  return hint.empty() ? "audio" : "audio (" + hint + ")";
}

}  // namespace

namespace {

// libsndfile quietly trusts the file over a WAV header whose data chunk claims more
// bytes than the file holds. Such a header lies (or the upload was cut short): say
// so instead of decoding whatever is there. Streaming writers that do not know the
// length put 0 or 0xFFFFFFFF there; those are accepted.
void check_wav_data_size(std::span<const uint8_t> b, const std::string& what) {
  auto u32 = [&](size_t at) {
    return uint32_t(b[at]) | uint32_t(b[at + 1]) << 8 | uint32_t(b[at + 2]) << 16 |
           uint32_t(b[at + 3]) << 24;
  };
  if (b.size() < 12 || std::memcmp(b.data(), "RIFF", 4) != 0 ||
      std::memcmp(b.data() + 8, "WAVE", 4) != 0)
    return;
  for (size_t at = 12; at + 8 <= b.size();) {
    const uint32_t size = u32(at + 4);
    if (std::memcmp(b.data() + at, "data", 4) == 0) {
      const uint64_t held = b.size() - (at + 8);
      MUSE_CHECK(size == 0 || size == 0xFFFFFFFFu || size <= held, what,
                 ": the WAV header claims ", size, " bytes of audio but the file holds ", held);
      return;
    }
    at += 8 + uint64_t(size) + (size & 1);  // chunks are padded to even sizes
  }
}

}  // namespace

PcmAudio decode_audio(std::span<const uint8_t> bytes, const AudioLimits& limits,
                      const std::string& format_hint) {
  const std::string what = label(format_hint);
  if (static_cast<int64_t>(bytes.size()) > limits.max_bytes) {
    throw MediaTooLarge(
        str_cat(what, " is ", bytes.size(), " bytes, over the limit of ", limits.max_bytes));
  }
  MUSE_CHECK(!bytes.empty(), what, ": empty data");
  check_wav_data_size(bytes, what);
  MemoryFile file{bytes.data(), static_cast<sf_count_t>(bytes.size()), 0};
  SF_VIRTUAL_IO vio{vio_length, vio_seek, vio_read, vio_write, vio_tell};
  SF_INFO info{};
  std::unique_ptr<SNDFILE, int (*)(SNDFILE*)> sf(sf_open_virtual(&vio, SFM_READ, &info, &file),
                                                 sf_close);
  MUSE_CHECK(sf, what,
             ": cannot decode (unsupported format or corrupt data: ", sf_strerror(nullptr), ")");
  MUSE_CHECK(info.samplerate > 0 && info.samplerate <= 1'000'000, what, ": invalid sample rate ",
             info.samplerate);
  MUSE_CHECK(info.channels > 0 && info.channels <= 256, what, ": invalid channel count ",
             info.channels);
  const double max_frames = limits.max_seconds * info.samplerate;
  // SF_COUNT_MAX (or a negative count) means the length is unknown until decoded.
  if (info.frames > 0 && info.frames != SF_COUNT_MAX && info.frames > max_frames) {
    throw MediaTooLarge(str_cat(what, " lasts ", static_cast<double>(info.frames) / info.samplerate,
                                " s, over the limit of ", limits.max_seconds, " s"));
  }

  PcmAudio out;
  out.sample_rate = info.samplerate;
  if (info.frames > 0 && info.frames <= max_frames) out.samples.reserve(info.frames);
  constexpr sf_count_t kChunk = 4096;
  std::vector<float> buf(static_cast<size_t>(kChunk * info.channels));
  const float inv_channels = 1.0f / static_cast<float>(info.channels);
  for (;;) {
    const sf_count_t got = sf_readf_float(sf.get(), buf.data(), kChunk);
    if (got <= 0) break;
    if (static_cast<double>(out.samples.size() + got) > max_frames) {
      throw MediaTooLarge(str_cat(what, " lasts more than the limit of ", limits.max_seconds,
                                  " s (the header understated its length)"));
    }
    for (sf_count_t i = 0; i < got; ++i) {
      float sum = 0.0f;
      for (int c = 0; c < info.channels; ++c) sum += buf[i * info.channels + c];
      out.samples.push_back(info.channels == 1 ? sum : sum * inv_channels);
    }
  }
  const int err = sf_error(sf.get());
  MUSE_CHECK(err == SF_ERR_NO_ERROR, what, ": decoding failed: ", sf_error_number(err));
  MUSE_CHECK(!out.samples.empty(), what, ": no audio samples");
  for (float v : out.samples) MUSE_CHECK(std::isfinite(v), what, ": non-finite sample values");
  return out;
}

PcmAudio resample(const PcmAudio& audio, int64_t rate) {
  MUSE_CHECK(rate > 0 && audio.sample_rate > 0, "resample: invalid sample rate");
  if (audio.sample_rate == rate || audio.samples.empty()) {
    PcmAudio same = audio;
    same.sample_rate = rate;
    return same;
  }
  const double ratio = static_cast<double>(rate) / static_cast<double>(audio.sample_rate);
  const size_t out_len =
      static_cast<size_t>(std::ceil(static_cast<double>(audio.samples.size()) * ratio));
  PcmAudio out;
  out.sample_rate = rate;
  out.samples.resize(out_len + 16);
  size_t done = 0;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  const soxr_error_t err =
      soxr_oneshot(static_cast<double>(audio.sample_rate), static_cast<double>(rate), 1,
                   audio.samples.data(), audio.samples.size(), nullptr, out.samples.data(),
                   out.samples.size(), &done, &io, &quality, nullptr);
  MUSE_CHECK(!err, "resample: libsoxr failed: ", err);
  out.samples.resize(std::min(done, out_len));
  return out;
}

}  // namespace muse::media
