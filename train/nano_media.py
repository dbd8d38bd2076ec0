"""Media for Muse Nano's synthetic data: images of coloured shapes, speech from
espeak-ng, and the exact front ends the C++ engine applies (image patches and
Whisper-style log-mel frames), so that training sees what serving sees.

The front ends mirror src/media (image_process.cpp FixedSize, whisper_mel.cpp and
audio_features.cpp); tests/model/test_muse_nano.cpp checks that PyTorch and the
engine agree on logits computed from the same PNG and WAV files.
"""
import io
import struct
import subprocess
import wave
import zlib

import numpy as np

IMAGE_SIZE = 64
PATCH = 8
SAMPLE_RATE = 16000
N_MEL = 80
STACK = 4  # log-mel frames per audio embedding row (25 rows per second)

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 205, 20),
    "purple": (140, 50, 180),
    "orange": (245, 135, 10),
}
SHAPES = ["circle", "square", "triangle", "diamond"]

# ---------------------------------------------------------------- images


def _shape_mask(shape, cx, cy, r, ss=4):
    """Anti-aliased coverage [64, 64] of one shape (ss x ss supersampling). Only the
    shape's bounding box is sampled (every shape lies within 1.3 r of its centre)."""
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    x0, y0 = (max(0, int(v - 1.3 * r) - 1) for v in (cx, cy))
    x1, y1 = (min(IMAGE_SIZE, int(v + 1.3 * r) + 2) for v in (cx, cy))
    x = x0 + (np.arange((x1 - x0) * ss) + 0.5) / ss
    y = y0 + (np.arange((y1 - y0) * ss) + 0.5) / ss
    dx, dy = np.meshgrid(x - cx, y - cy)
    if shape == "circle":
        m = dx * dx + dy * dy <= r * r
    elif shape == "square":
        s = r * 0.88
        m = (np.abs(dx) <= s) & (np.abs(dy) <= s)
    elif shape == "diamond":
        m = np.abs(dx) + np.abs(dy) <= r * 1.15
    else:  # triangle pointing up
        h = r * 1.1
        m = (dy <= h * 0.8) & (dy >= -h) & (np.abs(dx) <= (dy + h) * 0.62)
    out[y0:y1, x0:x1] = m.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))
    return out


def draw_shapes(rng, n_shapes, distinct=False, min_dx=0):
    """Returns (uint8 image [64,64,3], shapes) with shapes sorted left to right as
    dicts {color, shape, x, y, r}. Shapes never overlap."""
    bg = rng.integers(215, 256, size=3)
    img = np.ones((IMAGE_SIZE, IMAGE_SIZE, 3)) * bg
    img += rng.normal(0, 3, size=img.shape)
    placed = []
    used = set()
    tries = 0
    while len(placed) < n_shapes:
        tries += 1
        if tries > 2000:  # restart with a fresh layout
            return draw_shapes(rng, n_shapes, distinct, min_dx)
        r = rng.uniform(5.5, 9.0) if n_shapes > 2 else rng.uniform(7.0, 12.0)
        cx, cy = rng.uniform(r + 1, IMAGE_SIZE - r - 1, size=2)
        if any((cx - p["x"]) ** 2 + (cy - p["y"]) ** 2 < (r + p["r"] + 3) ** 2 for p in placed):
            continue
        if min_dx and any(abs(cx - p["x"]) < min_dx for p in placed):
            continue
        color = list(COLORS)[rng.integers(len(COLORS))]
        shape = SHAPES[rng.integers(len(SHAPES))]
        if distinct and (color, shape) in used:
            continue
        used.add((color, shape))
        placed.append({"color": color, "shape": shape, "x": cx, "y": cy, "r": r})
    for p in placed:
        m = _shape_mask(p["shape"], p["x"], p["y"], p["r"])[..., None]
        col = np.array(COLORS[p["color"]]) + rng.integers(-18, 19, size=3)
        img = img * (1 - m) + col * m
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    placed.sort(key=lambda p: p["x"])
    return img, placed


def image_patches(img):
    """uint8 [64,64,3] -> float32 [64 patches, 192]: raster patch order, each patch
    row-major pixels with RGB innermost, values (v / 255 - 0.5) / 0.5."""
    x = img.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    g = IMAGE_SIZE // PATCH
    x = x.reshape(g, PATCH, g, PATCH, 3).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(x.reshape(g * g, PATCH * PATCH * 3))


def patch_whitening(seed=5, images=1500, eps=1e-3):
    """(mean [192], ZCA whitening matrix [192,192]) of the patches of `images` pictures
    of 1-5 shapes; eps (about twice the pixel noise variance) keeps noise directions
    from being blown up. Deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([image_patches(draw_shapes(rng, int(rng.integers(1, 6)))[0])
                        for _ in range(images)]).astype(np.float64)
    lam, u = np.linalg.eigh(np.cov(x.T))
    return x.mean(0), u @ np.diag(1.0 / np.sqrt(lam + eps)) @ u.T


def encode_png(img):
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------- speech

VOICES = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
          "en-029", "en-us-nyc"]
VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5"]


def resample(x, rate_in, rate_out):
    """Band-limited resampling by FFT truncation (whole clip at once)."""
    if rate_in == rate_out:
        return x
    n_out = int(round(len(x) * rate_out / rate_in))
    spec = np.fft.rfft(x)
    spec = spec[: n_out // 2 + 1]
    return (np.fft.irfft(spec, n_out) * (n_out / len(x))).astype(np.float32)


def speak(text, rng):
    """espeak-ng with a random voice, variant, speed and pitch -> float32 16 kHz."""
    voice = VOICES[rng.integers(len(VOICES))] + VARIANTS[rng.integers(len(VARIANTS))]
    speed = int(rng.integers(120, 200))
    pitch = int(rng.integers(25, 76))
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout",
                          text], check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    pcm = resample(pcm, rate, SAMPLE_RATE)
    # espeak pads generously with silence; trim to the voiced part plus a margin.
    loud = np.nonzero(np.abs(pcm) > 0.01)[0]
    if len(loud):
        pcm = pcm[max(0, loud[0] - 800): loud[-1] + 800]
    return pcm


def augment(pcm, rng):
    """Random gain, leading/trailing silence and background noise."""
    lead = np.zeros(int(rng.integers(0, 5600)), np.float32)
    tail = np.zeros(int(rng.integers(0, 4000)), np.float32)
    x = np.concatenate([lead, pcm * rng.uniform(0.3, 1.0), tail]).astype(np.float32)
    if rng.random() < 0.85:
        snr_db = rng.uniform(8, 35)
        p = np.mean(x * x) + 1e-12
        noise = rng.normal(0, 1, size=len(x))
        if rng.random() < 0.5:  # brownish noise
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
        noise *= np.sqrt(p / 10 ** (snr_db / 10) / (np.mean(noise * noise) + 1e-12))
        x = x + noise.astype(np.float32)
    return np.clip(x, -1, 1).astype(np.float32)


def to_pcm16(x):
    """The samples a 16-bit WAV of x decodes to (what the engine reads back)."""
    q = np.clip(np.rint(x * 32768), -32768, 32767).astype(np.int16)
    return q, q.astype(np.float32) / 32768


def encode_wav(q):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(q.tobytes())
    return buf.getvalue()


def _hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    logstep = 27.0 / np.log(6.4)
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * logstep,
                    3.0 * hz / 200.0)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel - 15.0)),
                    200.0 * mel / 3.0)


def _mel_filters(n_mel=N_MEL, n_fft=400):
    n_bins = n_fft // 2 + 1
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(8000.0), n_mel + 2))
    freqs = np.linspace(0, SAMPLE_RATE // 2, n_bins)
    down = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    up = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    enorm = 2.0 / (edges[2:] - edges[:-2])
    return np.maximum(0, np.minimum(down, up)) * enorm[:, None]


_FILTERS = _mel_filters()
_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)


def log_mel(x):
    """Whisper log-mel of 16 kHz samples as the engine computes it for a clip:
    zero padding past the end, centred frames with reflect padding, max-8 clamp,
    (x + 4) / 4; returns the valid frames [n_frames, 80] (frame-major)."""
    n = len(x)
    hop, n_fft = 160, 400
    padded = (n + n_fft + hop - 1) // hop * hop + hop
    sig = np.zeros(padded, np.float64)
    sig[:n] = x
    sig = np.pad(sig, n_fft // 2, mode="reflect")
    n_frames = padded // hop
    idx = np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :]
    spec = np.fft.rfft(sig[idx] * _WINDOW, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    mel = np.log10(np.maximum(power @ _FILTERS.T, 1e-10))
    mel = (np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0
    valid = (n + hop - 1) // hop
    return mel[:valid].astype(np.float32)


def audio_rows(x):
    """16 kHz samples -> [n_rows, STACK * 80] stacked log-mel frames (the last
    incomplete group of frames is dropped)."""
    mel = log_mel(x)
    n = len(mel) // STACK
    return np.ascontiguousarray(mel[: n * STACK].reshape(n, STACK * N_MEL))
