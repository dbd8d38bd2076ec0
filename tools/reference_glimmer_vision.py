#!/usr/bin/env python3
"""Float64 NumPy reference of Muse Glimmer's vision tower and its image run.

Usage:
    python3 tools/reference_glimmer_vision.py /work/shared/goldens/muse_glimmer [--ablations]

It runs pixel_values / image_grid_thw from inputs.safetensors through the vision tower,
adapter and projection (docs/muse-glimmer-vision.md), compares the result with the golden
`image_embeds`, then runs the text decoder of tools/reference_forward.py on `input_ids`
with the image rows in place of the image tokens and compares with the golden `logits`.
It also checks that pixel_values are image.png cut into raster-order patches.
With --ablations it prints the error of each tested alternative (the table in the doc).
Exit status non-zero if an error is above 1e-5.

Needs only numpy (and zlib for the PNG check).
"""

import json
import math
import os
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_forward as rf  # noqa: E402  (the text decoder and safetensors reader)

TOLERANCE = 1e-5
TOWER = "model.vision_tower."
ADAPTER = "model.vision_adapter."
PROJECTION = "model.vision_projection.weight"

# The forward found against the golden; each ablation changes one key.
SPEC = {
    "pos_interp": "bilinear_zeros",   # bilinear, half-pixel centres, zeros outside the table
    "rope": ("width_first", "rotate_half"),
    "windows": "2d",                  # pos_emb_height x pos_emb_width patch windows
    "window_layers": "config",        # layer_types from the config
    "ln_eps": None,                   # None = vision_config.layer_norm_eps
    "attn_scale": None,               # None = head_dim ** -0.5
    "mlp_act": "erf",
    "ln_pre": "after_pos",
    "ln_post": True,
    "merge": "feature_major",         # merged[c * m*m + dy * m + dx]
    "head_gelu2": True,               # GELU after adapter fc2
    "head_act": "erf",
    "head_eps": None,                 # None = text rms_norm_eps
}


def gelu_erf(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def layer_norm(x, w, prefix, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w[prefix + ".weight"] + w[prefix + ".bias"]


def bilinear_matrix(n_in, n_out, mode):
    """[n_out, n_in] weights of 1-D linear interpolation at half-pixel centres
    (s = (o + 0.5) * n_in / n_out - 0.5). 'zeros': taps outside the table count as 0
    (grid_sample padding_mode='zeros', align_corners=False); 'border': clamp s into the
    table (F.interpolate bilinear, align_corners=False); 'corners': align_corners=True."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        if mode == "corners":
            s = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            s = (o + 0.5) * n_in / n_out - 0.5
            if mode == "border":
                s = min(max(s, 0.0), n_in - 1.0)
        i0 = math.floor(s)
        f = s - i0
        for i, wt in ((i0, 1.0 - f), (i0 + 1, f)):
            if 0 <= i < n_in:
                m[o, i] += wt
            elif mode != "zeros":
                m[o, min(max(i, 0), n_in - 1)] += wt
    return m


def position_embeddings(w, vc, grid_h, grid_w, mode):
    ph, pw = vc["pos_emb_height"], vc["pos_emb_width"]
    table = w[TOWER + "patch_embedder.position_embedding_table.weight"].reshape(ph, pw, -1)
    if mode == "none":
        return np.zeros((grid_h * grid_w, table.shape[-1]))
    if mode == "tile":
        r, c = np.divmod(np.arange(grid_h * grid_w), grid_w)
        return table[r % ph, c % pw]
    mh = bilinear_matrix(ph, grid_h, mode.split("_")[1])
    mw = bilinear_matrix(pw, grid_w, mode.split("_")[1])
    return np.einsum("ah,bw,hwc->abc", mh, mw, table).reshape(grid_h * grid_w, -1)


def rope_angles(grid_h, grid_w, head_dim, theta, order):
    """[N, head_dim/2] angles: inv_freq[j] = theta^(-4j/head_dim), j < head_dim/4; the
    first quarter of angles uses one coordinate, the second the other."""
    quarter = head_dim // 4
    inv_freq = 1.0 / theta ** (np.arange(quarter) * 4.0 / head_dim)
    row, col = np.divmod(np.arange(grid_h * grid_w), grid_w)
    a_row = row[:, None] * inv_freq
    a_col = col[:, None] * inv_freq
    if order == "width_first":
        return np.concatenate([a_col, a_row], 1)
    if order == "height_first":
        return np.concatenate([a_row, a_col], 1)
    return np.stack([a_col, a_row], -1).reshape(len(row), -1)  # interleaved w0 h0 w1 h1 ...


def apply_rope(x, angles, pairing):
    cos = np.cos(angles)[:, None, :]
    sin = np.sin(angles)[:, None, :]
    if pairing == "rotate_half":
        half = x.shape[-1] // 2
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], -1)
    out = np.empty_like(x)  # adjacent pairs (2i, 2i+1)
    a, b = x[..., 0::2], x[..., 1::2]
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = b * cos + a * sin
    return out


def window_ids(grid_h, grid_w, vc, kind):
    row, col = np.divmod(np.arange(grid_h * grid_w), grid_w)
    wh, ww = vc["pos_emb_height"], vc["pos_emb_width"]
    if kind == "2d":
        return (row // wh) * (grid_w + ww) + col // ww
    if kind == "raster_1d":
        return np.arange(grid_h * grid_w) // wh
    if kind == "rows":
        return row // wh
    if kind == "merge_cell":
        return (row // 2) * grid_w + col // 2
    raise KeyError(kind)


def vision_forward(cfg, w, pixel_values, grid_h, grid_w, spec=SPEC):
    """pixel_values [grid_h*grid_w, patch_dim] in raster order -> (projected rows before the
    final RMS norm [n_merged, out], image_embeds [n_merged, out])."""
    vc = cfg["vision_config"]
    dim, n_head = vc["hidden_size"], vc["num_attention_heads"]
    head_dim = dim // n_head
    eps = spec["ln_eps"] or vc["layer_norm_eps"]
    n = grid_h * grid_w
    x = pixel_values @ w[TOWER + "patch_embedder.patch_embedding.weight"].T
    pos = position_embeddings(w, vc, grid_h, grid_w, spec["pos_interp"])
    if spec["ln_pre"] == "after_pos":
        x = layer_norm(x + pos, w, TOWER + "ln_pre", eps)
    elif spec["ln_pre"] == "before_pos":
        x = layer_norm(x, w, TOWER + "ln_pre", eps) + pos
    else:
        x = x + pos
    angles = None
    if spec["rope"]:
        angles = rope_angles(grid_h, grid_w, head_dim, vc["rope_parameters"]["rope_theta"],
                             spec["rope"][0])
    scale = spec["attn_scale"] or head_dim ** -0.5
    act = gelu_erf if spec["mlp_act"] == "erf" else rf.gelu_tanh
    windows = window_ids(grid_h, grid_w, vc, spec["windows"]) if spec["windows"] else None
    for layer in range(vc["num_hidden_layers"]):
        p = f"{TOWER}layers.{layer}."
        windowed = {"config": vc["layer_types"][layer] == "window_attention",
                    "all": True}[spec["window_layers"]]
        h = layer_norm(x, w, p + "norm1", eps)
        q = rf.linear(h, w, p + "attn.q_proj").reshape(n, n_head, head_dim)
        k = rf.linear(h, w, p + "attn.k_proj").reshape(n, n_head, head_dim)
        v = rf.linear(h, w, p + "attn.v_proj").reshape(n, n_head, head_dim)
        if angles is not None:
            q = apply_rope(q, angles, spec["rope"][1])
            k = apply_rope(k, angles, spec["rope"][1])
        scores = np.einsum("thd,shd->hts", q, k) * scale
        if windowed and windows is not None:
            scores = np.where((windows[:, None] == windows[None, :])[None], scores, -np.inf)
        scores -= scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", probs, v).reshape(n, dim)
        x = x + rf.linear(o, w, p + "attn.proj")
        h = layer_norm(x, w, p + "norm2", eps)
        x = x + rf.linear(act(rf.linear(h, w, p + "mlp.fc1")), w, p + "mlp.fc2")
    if spec["ln_post"]:
        x = layer_norm(x, w, TOWER + "ln_post", eps)

    m = vc["merge_size"]
    cells = x.reshape(grid_h // m, m, grid_w // m, m, dim)  # [by, dy, bx, dx, c]
    order = {"feature_major": (0, 2, 4, 1, 3), "feature_major_colfirst": (0, 2, 4, 3, 1),
             "patch_major": (0, 2, 1, 3, 4)}[spec["merge"]]
    merged = cells.transpose(*order).reshape(-1, dim * m * m)

    head_act = gelu_erf if spec["head_act"] == "erf" else rf.gelu_tanh
    y = head_act(merged @ w[ADAPTER + "fc1.weight"].T) @ w[ADAPTER + "fc2.weight"].T
    if spec["head_gelu2"]:
        y = head_act(y)
    projected = y @ w[PROJECTION].T
    eps_out = spec["head_eps"] or cfg["text_config"]["rms_norm_eps"]
    return projected, rf.rms_norm(projected, None, eps_out)


def image_run_logits(cfg, w, ids, image_rows, image_positions_same=False):
    """Text decoder of reference_forward on `ids`, image tokens replaced by `image_rows`.

    The rows are appended to the embedding table (ids vocab.. ), so they pass through the
    decoder's embedding RMS norm exactly like token rows. Fed the *projected* rows (before
    the vision tower's final norm) this reproduces the golden: since both eps are 1e-5,
    rms(projected) = image_embeds, i.e. the image embeddings enter the layers unchanged.
    """
    pre = "model.language_model."
    emb = w[pre + "embed_tokens.weight"]
    weights = dict(w)
    weights[pre + "embed_tokens.weight"] = np.vstack([emb, image_rows])
    ids = ids.copy()
    where = np.where(ids == cfg["image_token_id"])[0]
    ids[where] = emb.shape[0] + np.arange(len(where))
    if not image_positions_same:
        return rf.forward_muse_glimmer(cfg, weights, ids)
    # Ablation only: every image token at the position of the first one (later ones shift).
    positions = np.arange(len(ids))
    positions[where] = where[0]
    positions[where[-1] + 1:] -= len(where) - 1
    original = rf.rope_rotate_half
    rf.rope_rotate_half = lambda x, _pos, theta: original(x, positions, theta)
    try:
        return rf.forward_muse_glimmer(cfg, weights, ids)
    finally:
        rf.rope_rotate_half = original


# ----------------------------------------------------------------------------- pixel order

def read_png_rgb8(path):
    """Minimal decoder for 8-bit RGB non-interlaced PNGs (the golden's image.png)."""
    data = open(path, "rb").read()
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color == 2, "only 8-bit RGB"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + 3 * width)
    out = np.zeros((height, 3 * width), np.int64)
    prev = np.zeros(3 * width, np.int64)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int64)
        cur = np.zeros_like(prev)
        for i in range(3 * width):
            a = cur[i - 3] if i >= 3 else 0
            b = prev[i]
            c = prev[i - 3] if i >= 3 else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (line[i] + pred) & 255
        out[y] = prev = cur
    return out.reshape(height, width, 3)


def patches_from_image(img, meta, grid_h, grid_w, merge_order):
    """Rows [t][c][py][px] (both temporal copies of the still image); raster or Qwen2-VL
    2x2 merge order of the patches."""
    proc = meta["image_processor"]
    p, t = proc["patch_size"], proc["temporal_patch_size"]
    x = (img * proc["rescale_factor"] - np.array(proc["image_mean"])) / np.array(proc["image_std"])
    frames = np.stack([x.transpose(2, 0, 1)] * t)  # [t, c, H, W]
    m = proc["merge_size"] if merge_order else 1
    a = frames.reshape(t, 3, grid_h // m, m, p, grid_w // m, m, p)
    return a.transpose(2, 5, 3, 6, 0, 1, 4, 7).reshape(grid_h * grid_w, -1)


# ----------------------------------------------------------------------------- driver

ABLATIONS = [
    ("pos_interp", "bilinear_border"), ("pos_interp", "bilinear_corners"),
    ("pos_interp", "tile"), ("pos_interp", "none"),
    ("rope", ("height_first", "rotate_half")), ("rope", ("interleaved", "rotate_half")),
    ("rope", ("width_first", "adjacent_pairs")), ("rope", None),
    ("windows", None), ("windows", "raster_1d"), ("windows", "rows"), ("windows", "merge_cell"),
    ("window_layers", "all"), ("ln_eps", 1e-6), ("attn_scale", 0.125), ("mlp_act", "tanh"),
    ("ln_pre", "before_pos"), ("ln_pre", "none"), ("ln_post", False),
    ("merge", "patch_major"), ("merge", "feature_major_colfirst"),
    ("head_gelu2", False), ("head_act", "tanh"), ("head_eps", 1e-6),
]


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__)
        return 2
    case = args[0]
    cfg = json.load(open(os.path.join(case, "config.json")))
    meta = json.load(open(os.path.join(case, "meta.json")))
    w = {k: v.astype(np.float64)
         for k, v in rf.load_safetensors(os.path.join(case, "model.safetensors")).items()}
    inputs = rf.load_safetensors(os.path.join(case, "inputs.safetensors"))
    outputs = rf.load_safetensors(os.path.join(case, "outputs.safetensors"))
    pixels = inputs["pixel_values"].astype(np.float64)
    grid_t, grid_h, grid_w = (int(v) for v in inputs["image_grid_thw"][0])
    assert grid_t == 1, "the reference handles one still image"
    golden_embeds = outputs["image_embeds"].astype(np.float64)
    golden_logits = outputs["logits"].astype(np.float64)
    ids = inputs["input_ids"].astype(np.int64)
    ok = True

    img = read_png_rgb8(os.path.join(case, "image.png")).astype(np.float64)
    for name, merge_order in (("raster", False), ("qwen2vl 2x2 merge", True)):
        err = np.abs(patches_from_image(img, meta, grid_h, grid_w, merge_order) - pixels).max()
        print(f"pixel_values vs image.png in {name} order: max |diff| = {err:.3e}")

    projected, embeds = vision_forward(cfg, w, pixels, grid_h, grid_w)
    err_embeds = float(np.abs(embeds - golden_embeds).max())
    print(f"image_embeds: max |diff| = {err_embeds:.3e} (golden max |x| "
          f"{np.abs(golden_embeds).max():.3f})")
    logits = image_run_logits(cfg, w, ids, projected)
    err_logits = float(np.abs(logits - golden_logits).max())
    print(f"image-run logits: max |diff| = {err_logits:.3e}")
    ok = err_embeds <= TOLERANCE and err_logits <= TOLERANCE

    if "--ablations" in argv:
        print("\nvision alternatives (max |image_embeds - golden|):")
        for key, value in ABLATIONS:
            spec = dict(SPEC, **{key: value})
            err = np.abs(vision_forward(cfg, w, pixels, grid_h, grid_w, spec)[1] -
                         golden_embeds).max()
            print(f"  {key} = {value}: {err:.3e}")
        print("\ndecoder alternatives (max |logits - golden|):")
        # Golden image_embeds normed again by the embedding RMS norm (= fed as token rows).
        twice = image_run_logits(cfg, w, ids, golden_embeds)
        print(f"  image_embeds through the embedding norm again: "
              f"{np.abs(twice - golden_logits).max():.3e}")
        same = image_run_logits(cfg, w, ids, projected, image_positions_same=True)
        print(f"  all image tokens at one position: {np.abs(same - golden_logits).max():.3e}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
