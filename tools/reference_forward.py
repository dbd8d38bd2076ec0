#!/usr/bin/env python3
"""Float64 NumPy reference forward pass for the text decoders in shared/goldens.

Usage:
    python3 tools/reference_forward.py /work/shared/goldens/<case> [more cases...]
    python3 tools/reference_forward.py --q8_0-weights <case dirs...>   # Q8_0 rounding error
    python3 tools/reference_forward.py --q8_0-sensitivity <case dirs...>   # ... per tensor group

Supported model types: llama, qwen2, qwen3, gemma3_text (case `gemma3`) and the text
decoder of muse_glimmer (model.language_model.* + lm_head; see docs/muse-glimmer.md).

For each case it runs the prompt (input_ids, or input_ids_text for muse_glimmer) and prints
the max |diff| against the golden logits (`logits`, or `text_logits` for muse_glimmer).
Then it makes a greedy continuation of 16 tokens (append the argmax, run the full sequence
again) and compares it with `greedy_ids`. The exit status is non-zero if a case fails
(diff > 1e-4 or the greedy ids differ).

Needs only numpy. The safetensors reader is a few lines here (8-byte little-endian
header length, JSON header, raw little-endian data).
"""

import json
import os
import struct
import sys

try:
    import numpy as np
except ImportError:  # pragma: no cover - environment hint only
    sys.exit("reference_forward.py needs numpy (try /usr/bin/python3)")

GREEDY_STEPS = 16
LOGIT_TOLERANCE = 1e-4

# ----------------------------------------------------------------------------- file reading

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16,
           "I32": np.int32, "I64": np.int64}


def load_safetensors(path):
    """Returns {name: ndarray} for every tensor in a .safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    header_len = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(data[base + begin:base + end], dtype=dtype).reshape(
            info["shape"])
    return tensors


# ----------------------------------------------------------------------------- building blocks

def rms_norm(x, weight, eps, plus_one=False):
    """x / sqrt(mean(x^2) + eps) over the last axis, times w (or 1 + w); weight None = no gain."""
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    if weight is None:
        return y
    return y * (1.0 + weight if plus_one else weight)


def rope_rotate_half(x, positions, theta):
    """HF default rotary (NeoX / rotate_half) on the full head dim. x: [T, heads, D]."""
    head_dim = x.shape[-1]
    half = head_dim // 2
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = positions[:, None].astype(np.float64) * inv_freq[None, :]  # [T, D/2]
    cos = np.cos(angles)[:, None, :]
    sin = np.sin(angles)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def attention(q, k, v, scale, sliding_window=None):
    """Causal GQA attention. q: [T, Hq, D], k/v: [T, Hkv, D]; returns [T, Hq*D].

    With a sliding window W, query i sees keys j with i - W < j <= i (itself plus W-1 earlier
    tokens), which is the HF convention that the gemma3 and muse_glimmer goldens confirm.
    """
    seq, n_q, head_dim = q.shape
    group = n_q // k.shape[1]
    k = np.repeat(k, group, axis=1)  # query head h uses kv head h // group
    v = np.repeat(v, group, axis=1)
    scores = np.einsum("thd,shd->hts", q, k) * scale
    i = np.arange(seq)[:, None]
    j = np.arange(seq)[None, :]
    allowed = j <= i
    if sliding_window is not None:
        allowed &= (i - j) < sliding_window
    scores = np.where(allowed[None], scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    return np.einsum("hts,shd->thd", probs, v).reshape(seq, n_q * head_dim)


def silu(x):
    return x / (1.0 + np.exp(-x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def linear(x, weights, name):
    """x @ W^T (+ b if the checkpoint has name.bias)."""
    y = x @ weights[name + ".weight"].T
    bias = weights.get(name + ".bias")
    return y if bias is None else y + bias


def gated_mlp(h, weights, prefix, act):
    gate = linear(h, weights, prefix + "gate_proj")
    up = linear(h, weights, prefix + "up_proj")
    return linear(act(gate) * up, weights, prefix + "down_proj")


def softcap(logits, cap):
    return logits if not cap else cap * np.tanh(logits / cap)


# ----------------------------------------------------------------------------- architectures

def forward_llama_like(cfg, w, ids):
    """llama / qwen2 (q/k/v bias if present) / qwen3 (per-head q_norm, k_norm before rope)."""
    n_q, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_q
    eps = cfg["rms_norm_eps"]
    theta = cfg["rope_parameters"]["rope_theta"]
    seq = len(ids)
    pos = np.arange(seq)
    x = w["model.embed_tokens.weight"][ids]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = linear(h, w, p + "self_attn.q_proj").reshape(seq, n_q, head_dim)
        k = linear(h, w, p + "self_attn.k_proj").reshape(seq, n_kv, head_dim)
        v = linear(h, w, p + "self_attn.v_proj").reshape(seq, n_kv, head_dim)
        if p + "self_attn.q_norm.weight" in w:  # qwen3
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q = rope_rotate_half(q, pos, theta)
        k = rope_rotate_half(k, pos, theta)
        o = attention(q, k, v, head_dim ** -0.5)
        x = x + linear(o, w, p + "self_attn.o_proj")
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        x = x + gated_mlp(h, w, p + "mlp.", silu)
    x = rms_norm(x, w["model.norm.weight"], eps)
    lm_head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ lm_head.T


def forward_gemma3(cfg, w, ids):
    """Gemma 3 text: sqrt(H) embedding scale, x*(1+w) norms, sandwich norms, q/k norms,
    query_pre_attn_scalar^-0.5 scale, gelu_tanh MLP, per-layer-type rope base and window."""
    n_q, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    seq = len(ids)
    pos = np.arange(seq)
    # (HF stores embed_scale as a float32 buffer; the exact and the float32-rounded sqrt(H)
    # match the golden equally well, 3.3e-7.)
    embed_scale = cfg["hidden_size"] ** 0.5
    x = w["model.embed_tokens.weight"][ids] * embed_scale
    scale = cfg["query_pre_attn_scalar"] ** -0.5
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        layer_type = cfg["layer_types"][layer]
        theta = cfg["rope_parameters"][layer_type]["rope_theta"]
        window = cfg["sliding_window"] if layer_type == "sliding_attention" else None
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps, plus_one=True)
        q = linear(h, w, p + "self_attn.q_proj").reshape(seq, n_q, head_dim)
        k = linear(h, w, p + "self_attn.k_proj").reshape(seq, n_kv, head_dim)
        v = linear(h, w, p + "self_attn.v_proj").reshape(seq, n_kv, head_dim)
        q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps, plus_one=True)
        k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps, plus_one=True)
        q = rope_rotate_half(q, pos, theta)
        k = rope_rotate_half(k, pos, theta)
        o = linear(attention(q, k, v, scale, window), w, p + "self_attn.o_proj")
        x = x + rms_norm(o, w[p + "post_attention_layernorm.weight"], eps, plus_one=True)
        h = rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], eps, plus_one=True)
        m = gated_mlp(h, w, p + "mlp.", gelu_tanh)
        x = x + rms_norm(m, w[p + "post_feedforward_layernorm.weight"], eps, plus_one=True)
    x = rms_norm(x, w["model.norm.weight"], eps, plus_one=True)
    lm_head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return softcap(x @ lm_head.T, cfg.get("final_logit_softcapping"))


def forward_muse_glimmer(cfg, w, ids):
    """Muse Glimmer text decoder; every step is specified in docs/muse-glimmer.md."""
    tc = cfg["text_config"]
    n_q, n_kv = tc["num_attention_heads"], tc["num_key_value_heads"]
    head_dim = tc["head_dim"]
    eps = tc["rms_norm_eps"]          # embedding, input, q/k, pre-feedforward and final norms
    post_eps = tc["post_norm_eps"]    # post_attention and post_feedforward norms
    scale = tc["qk_scale_factor"] / np.sqrt(head_dim)
    seq = len(ids)
    pos = np.arange(seq)
    pre = "model.language_model."
    # Embedding: weightless RMS norm (no sqrt(H) scale).
    x = rms_norm(w[pre + "embed_tokens.weight"][ids], None, eps)
    for layer in range(tc["num_hidden_layers"]):
        p = f"{pre}layers.{layer}."
        a = p + "self_attn."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps, plus_one=True)
        q = linear(h, w, a + "q_proj").reshape(seq, n_q, head_dim)
        k = linear(h, w, a + "k_proj").reshape(seq, n_kv, head_dim)
        v = linear(h, w, a + "v_proj").reshape(seq, n_kv, head_dim)
        q = rms_norm(q, None, eps)  # weightless per-head QK-norm
        k = rms_norm(k, None, eps)
        theta = tc["layer_rope_theta"][layer]
        if theta:  # theta 0 = NoPE layer
            q = rope_rotate_half(q, pos, theta)
            k = rope_rotate_half(k, pos, theta)
        window = tc["sliding_window"] if tc["layer_types"][layer] == "sliding_attention" else None
        o = attention(q, k, v, scale, window)
        o = o * sigmoid(linear(h, w, a + "gate_proj"))  # per-element output gate, before o_proj
        o = linear(o, w, a + "o_proj")
        x = x + rms_norm(o, w[p + "post_attention_layernorm.weight"], post_eps, plus_one=True)
        h = rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], eps, plus_one=True)
        m = gated_mlp(h, w, p + "mlp.", silu)
        x = x + rms_norm(m, w[p + "post_feedforward_layernorm.weight"], post_eps, plus_one=True)
    x = rms_norm(x, w[pre + "norm.weight"], eps)  # final norm: plain x*w
    logits = x @ w["lm_head.weight"].T
    return softcap(tc["output_multiplier"] * logits, tc["final_logit_softcapping"])


FORWARDS = {
    "llama": forward_llama_like,
    "qwen2": forward_llama_like,
    "qwen3": forward_llama_like,
    "gemma3_text": forward_gemma3,
    "muse_glimmer": forward_muse_glimmer,
}


# ----------------------------------------------------------------------------- driver

def load_case(case_dir):
    with open(os.path.join(case_dir, "config.json")) as f:
        cfg = json.load(f)
    model_type = cfg["model_type"]
    if model_type not in FORWARDS:
        raise SystemExit(f"{case_dir}: unsupported model_type {model_type!r}")
    weights = {name: t.astype(np.float64)
               for name, t in load_safetensors(os.path.join(case_dir, "model.safetensors")).items()
               if not name.startswith(("model.visual", "model.vision", "model.multi_modal"))}
    inputs = load_safetensors(os.path.join(case_dir, "inputs.safetensors"))
    outputs = load_safetensors(os.path.join(case_dir, "outputs.safetensors"))
    text_only = model_type == "muse_glimmer"
    ids = inputs["input_ids_text" if text_only else "input_ids"].astype(np.int64).reshape(-1)
    golden = outputs["text_logits" if text_only else "logits"].astype(np.float64)
    greedy = outputs["greedy_ids"].astype(np.int64).reshape(-1)
    return cfg, weights, ids, golden, greedy


def greedy_continuation(forward, cfg, weights, ids, steps):
    seq = list(ids)
    out = []
    for _ in range(steps):
        next_id = int(np.argmax(forward(cfg, weights, np.array(seq))[-1]))
        out.append(next_id)
        seq.append(next_id)
    return out


def round_q8_0(w):
    """Weights-only Q8_0 rounding (blocks of 32, d = max|x|/127 stored as f16)."""
    if w.ndim != 2 or w.shape[-1] % 32:
        return w
    blocks = w.reshape(-1, 32)
    d = (np.abs(blocks).max(1, keepdims=True) / 127).astype(np.float16).astype(np.float64)
    q = np.round(blocks / np.where(d == 0, 1, d))
    return (q * d).reshape(w.shape)


def tensor_groups(weights):
    """Weight matrices grouped by role (layers.N. -> layers.*.)."""
    groups = {}
    for name, w in weights.items():
        if w.ndim == 2:
            key = ".".join("*" if part.isdigit() else part for part in name.split("."))
            groups.setdefault(key, []).append(name)
    return groups


def q8_0_sensitivity(case_dir):
    """Which weights' Q8_0 rounding moves the logits: each group rounded alone, and
    everything rounded except that group."""
    cfg, weights, ids, golden, _ = load_case(case_dir)
    forward = FORWARDS[cfg["model_type"]]
    rounded = {k: round_q8_0(v) for k, v in weights.items()}

    def report(label, w):
        logits = forward(cfg, w, ids)
        return (f"{label} {np.abs(logits - golden).max():.4f} "
                f"(top-1 {(logits.argmax(1) == golden.argmax(1)).mean():.3f})")

    print(os.path.basename(os.path.normpath(case_dir)) + ": " + report("all rounded:", rounded))
    for group, names in sorted(tensor_groups(weights).items()):
        only = dict(weights, **{k: rounded[k] for k in names})
        but = dict(rounded, **{k: weights[k] for k in names})
        print(f"  {group}: {report('only this group rounded:', only)}; "
              f"{report('all but this group:', but)}")
    return True


def run_case(case_dir, round_weights=False):
    cfg, weights, ids, golden, golden_greedy = load_case(case_dir)
    if round_weights:
        # How far Q8_0 rounding of the weights alone moves the logits (no tolerance check).
        weights = {k: round_q8_0(v) for k, v in weights.items()}
        logits = FORWARDS[cfg["model_type"]](cfg, weights, ids)
        print(f"{os.path.basename(os.path.normpath(case_dir))}: q8_0 weights, max |logits - golden| = "
              f"{np.abs(logits - golden).max():.4f}, top-1 agreement "
              f"{(logits.argmax(1) == golden.argmax(1)).mean():.3f}")
        return True
    forward = FORWARDS[cfg["model_type"]]
    logits = forward(cfg, weights, ids)
    max_diff = float(np.abs(logits - golden).max())
    greedy = greedy_continuation(forward, cfg, weights, ids, GREEDY_STEPS)
    greedy_ok = greedy == golden_greedy.tolist()
    name = os.path.basename(os.path.normpath(case_dir))
    print(f"{name}: max |logits - golden| = {max_diff:.3e} (golden max |logit| "
          f"{np.abs(golden).max():.3f}), greedy ids {'match' if greedy_ok else 'DIFFER'}")
    if not greedy_ok:
        print(f"  ours:   {greedy}\n  golden: {golden_greedy.tolist()}")
    return max_diff <= LOGIT_TOLERANCE and greedy_ok


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    round_weights = "--q8_0-weights" in argv
    sensitivity = "--q8_0-sensitivity" in argv
    cases = [a for a in argv[1:] if not a.startswith("--q8_0-")]
    if sensitivity:
        return 0 if all([q8_0_sensitivity(case_dir) for case_dir in cases]) else 1
    ok = all([run_case(case_dir, round_weights) for case_dir in cases])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
