"""Muse Nano in PyTorch: the same computation as the engine's `muse` architecture
(docs/muse-nano.md). One decoder; image patches and stacked log-mel frames are
projected straight into its embedding space.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Config:
    def __init__(self, **kw):
        self.vocab_size = 0
        self.hidden_size = 192
        self.num_hidden_layers = 6
        self.num_attention_heads = 6
        self.num_key_value_heads = 2
        self.head_dim = 32
        self.intermediate_size = 576
        self.rms_norm_eps = 1e-5
        self.rope_theta = 10000.0
        self.max_position_embeddings = 1024
        self.patch_dim = 8 * 8 * 3
        self.grid = 8
        self.audio_dim = 4 * 80
        self.__dict__.update(kw)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c.hidden_size, c.head_dim
        self.c = c
        self.input_layernorm = nn.Parameter(torch.ones(d))
        self.q_proj = nn.Linear(d, c.num_attention_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, c.num_key_value_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, c.num_key_value_heads * hd, bias=False)
        self.o_proj = nn.Linear(c.num_attention_heads * hd, d, bias=False)
        self.post_attention_layernorm = nn.Parameter(torch.ones(d))
        self.gate_proj = nn.Linear(d, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(d, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, d, bias=False)

    def forward(self, x, cos, sin, mask):
        c = self.c
        B, T, _ = x.shape
        h = rms_norm(x, self.input_layernorm, c.rms_norm_eps)
        q = self.q_proj(h).view(B, T, c.num_attention_heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, T, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, T, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = c.num_attention_heads // c.num_key_value_heads
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(c.head_dim))
        att = att.masked_fill(~mask[:, None], float("-inf")).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, -1)
        x = x + self.o_proj(o)
        h = rms_norm(x, self.post_attention_layernorm, c.rms_norm_eps)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class MuseNano(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c.hidden_size
        self.embed_tokens = nn.Embedding(c.vocab_size, d)
        self.layers = nn.ModuleList([Block(c) for _ in range(c.num_hidden_layers)])
        self.norm = nn.Parameter(torch.ones(d))
        self.patch_proj = nn.Linear(c.patch_dim, d)
        self.row_embed = nn.Parameter(torch.zeros(c.grid, d))
        self.col_embed = nn.Parameter(torch.zeros(c.grid, d))
        self.audio_proj = nn.Linear(c.audio_dim, d)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
            if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.num_hidden_layers))
        nn.init.zeros_(self.patch_proj.bias)
        nn.init.zeros_(self.audio_proj.bias)
        # Patches are whitened before the projection while training (set_patch_whitening);
        # zero mean and identity here: the projection sees raw patches, as in the engine.
        self.register_buffer("patch_mean", torch.zeros(c.patch_dim), persistent=False)
        self.register_buffer("patch_white", torch.eye(c.patch_dim), persistent=False)

    def set_patch_whitening(self, mean, white, keep_function):
        """From now on the patch projection acts on whitened patches (x - mean) @ white.T.
        Raw patches are badly conditioned for gradient descent: the patch's mean colour
        carries ~10^4 times the variance of the edges that tell a circle from a square,
        so the projection learns colour at once and shape hardly at all. With
        keep_function the weights are re-expressed so the model computes the same
        function as before (continuing from a checkpoint, whose projection is folded)."""
        with torch.no_grad():
            if keep_function:  # W x + b = W S^-1 (S (x - mean)) + (b + W mean)
                W, b = self.patch_proj.weight, self.patch_proj.bias
                b.add_(W @ mean)
                W.copy_(W @ torch.linalg.inv(white))
            self.patch_mean.copy_(mean)
            self.patch_white.copy_(white)

    def fold_patch_whitening(self):
        """Folds the whitening into the projection (W S, b - W S mean), so the exported
        tensors are the plain linear patch projection the engine computes."""
        with torch.no_grad():
            W, b = self.patch_proj.weight, self.patch_proj.bias
            folded = W @ self.patch_white
            b.sub_(folded @ self.patch_mean)
            W.copy_(folded)
            self.patch_mean.zero_()
            self.patch_white.copy_(torch.eye(self.c.patch_dim))

    def embed(self, ids, image_rows, image_at, patch_index, audio_rows, audio_at):
        """ids [B,T]; image_rows [Ni, patch_dim] go to flat positions image_at (patch
        index patch_index in the 8x8 grid); audio_rows [Na, audio_dim] to audio_at."""
        B, T = ids.shape
        x = self.embed_tokens(ids).reshape(B * T, -1)
        if image_rows is not None and len(image_rows):
            g = self.c.grid
            whitened = (image_rows - self.patch_mean) @ self.patch_white.T
            v = self.patch_proj(whitened) + self.row_embed[patch_index // g] + \
                self.col_embed[patch_index % g]
            x = x.index_put((image_at,), v)
        if audio_rows is not None and len(audio_rows):
            x = x.index_put((audio_at,), self.audio_proj(audio_rows))
        return x.view(B, T, -1)

    def forward(self, x, positions, mask):
        """x [B,T,d] input embeddings, positions [B,T], mask [B,T,T] (True = attend)."""
        c = self.c
        inv = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float32) / c.head_dim))
        ang = positions[..., None].float() * inv
        cos, sin = ang.cos()[:, None], ang.sin()[:, None]
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        x = rms_norm(x, self.norm, c.rms_norm_eps)
        return x @ self.embed_tokens.weight.T

    def hf_state(self):
        """Hugging Face style tensor names (what `muse convert` reads)."""
        out = {"model.embed_tokens.weight": self.embed_tokens.weight, "model.norm.weight": self.norm,
               "model.vision_embed.proj.weight": self.patch_proj.weight,
               "model.vision_embed.proj.bias": self.patch_proj.bias,
               "model.vision_embed.row_embed": self.row_embed,
               "model.vision_embed.col_embed": self.col_embed,
               "model.audio_embed.proj.weight": self.audio_proj.weight,
               "model.audio_embed.proj.bias": self.audio_proj.bias}
        for i, l in enumerate(self.layers):
            p = f"model.layers.{i}."
            out[p + "input_layernorm.weight"] = l.input_layernorm
            out[p + "post_attention_layernorm.weight"] = l.post_attention_layernorm
            for n in ["q_proj", "k_proj", "v_proj", "o_proj"]:
                out[p + f"self_attn.{n}.weight"] = getattr(l, n).weight
            for n in ["gate_proj", "up_proj", "down_proj"]:
                out[p + f"mlp.{n}.weight"] = getattr(l, n).weight
        return out

    def load_hf_state(self, tensors):
        with torch.no_grad():
            for name, p in self.hf_state().items():
                p.copy_(torch.from_numpy(tensors[name]))


def causal_mask(segments):
    """segments [B,T] -> [B,T,T]: causal attention within each packed sample."""
    T = segments.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return (segments[:, :, None] == segments[:, None, :]) & causal
