#!/usr/bin/env python3
"""Trains Muse Nano end to end on synthetic data and writes a Hugging Face style
directory (config.json, model.safetensors, tokenizer.json, tokenizer_config.json)
that `muse convert` turns into the GGUF Muse ships. See train/README.md.

    python3 train/train_nano.py --out /tmp/muse-nano-hf --seed 1234 --steps 1600
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nano_media as nm  # noqa: E402
import nano_model as M  # noqa: E402
import nano_safetensors as ST  # noqa: E402
import nano_tasks as T  # noqa: E402
from nano_tokenizer import Tokenizer, train_bpe  # noqa: E402

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "templates",
                        "muse-nano.jinja")
SPEECH_COPIES = {"digit": 60, "number": 6, "command": 30, "arith": 8}


def pack_batch(rng, pool, tok, rows, row_len, tasks=T.TASKS):
    """Packs whole samples into `rows` rows of `row_len` tokens (no sample is cut);
    returns the tensors the model and the loss need."""
    ids = np.zeros((rows, row_len), np.int64)
    seg = np.full((rows, row_len), -1, np.int64)
    pos = np.zeros((rows, row_len), np.int64)
    learn = np.zeros((rows, row_len), bool)
    img_rows, img_at, img_patch, aud_rows, aud_at = [], [], [], [], []
    n_samples = 0
    for r in range(rows):
        fill, k = 0, 0
        while True:
            s = T.sample(rng, pool, tasks)
            sid, smask, media = T.render(tok, s)
            if len(sid) > row_len:
                continue
            if fill + len(sid) > row_len:
                break
            ids[r, fill:fill + len(sid)] = sid
            seg[r, fill:fill + len(sid)] = k
            pos[r, fill:fill + len(sid)] = np.arange(len(sid))
            learn[r, fill:fill + len(sid)] = smask
            for kind, start, m in media:
                at = r * row_len + fill + start + np.arange(len(m))
                if kind == "image":
                    img_rows.append(m), img_at.append(at), img_patch.append(np.arange(len(m)))
                else:
                    aud_rows.append(m), aud_at.append(at)
            fill += len(sid)
            k += 1
            n_samples += 1
    cat = lambda xs, dim: torch.from_numpy(np.concatenate(xs)) if xs else torch.zeros((0, dim))
    # target of position t is token t+1 of the same sample; learn[t+1] says whether it counts
    tgt = np.full((rows, row_len), -100, np.int64)
    same = (seg[:, 1:] == seg[:, :-1]) & (seg[:, 1:] >= 0) & learn[:, 1:]
    tgt[:, :-1] = np.where(same, ids[:, 1:], -100)
    return dict(ids=torch.from_numpy(ids), seg=torch.from_numpy(seg), pos=torch.from_numpy(pos),
                tgt=torch.from_numpy(tgt), img_rows=cat(img_rows, 192).float(),
                img_at=cat(img_at, 0).long(), img_patch=cat(img_patch, 0).long(),
                aud_rows=cat(aud_rows, 320).float(), aud_at=cat(aud_at, 0).long(),
                n_samples=n_samples)


def forward_batch(model, b):
    x = model.embed(b["ids"], b["img_rows"], b["img_at"], b["img_patch"], b["aud_rows"], b["aud_at"])
    return model(x, b["pos"], M.causal_mask(b["seg"]))


def round_to_f16(model):
    """Makes every weight exactly representable in f16, so the f16 GGUF holds the
    very numbers PyTorch evaluates (the engine computes in f32 on them)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def write_hf_dir(out, model, cfg, tok):
    os.makedirs(out, exist_ok=True)
    ST.save_safetensors(os.path.join(out, "model.safetensors"),
                       {k: v.detach().numpy() for k, v in model.hf_state().items()})
    conf = {
        "model_type": "muse", "architectures": ["MuseNanoForCausalLM"],
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers, "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads, "head_dim": cfg.head_dim,
        "intermediate_size": cfg.intermediate_size, "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta, "max_position_embeddings": cfg.max_position_embeddings,
        "hidden_act": "silu", "tie_word_embeddings": True,
        "image_token_id": tok.id("<|image|>"), "image_start_token_id": tok.id("<|image_start|>"),
        "image_end_token_id": tok.id("<|image_end|>"), "audio_token_id": tok.id("<|audio|>"),
        "audio_start_token_id": tok.id("<|audio_start|>"),
        "audio_end_token_id": tok.id("<|audio_end|>"),
        "vision_config": {"image_size": 64, "patch_size": 8, "num_channels": 3,
                          "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
        "audio_config": {"sampling_rate": 16000, "num_mel_bins": 80, "stack_frames": 4},
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(TEMPLATE) as f:
        template = f.read()
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None,
                   "add_bos_token": False, "chat_template": template}, f, indent=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--row-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--merges", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", help="continue from this Hugging Face directory (its tokenizer too)")
    ap.add_argument("--mix", default="default", choices=sorted(T.MIXES), help="task mixture")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    t0 = time.time()

    pool = T.build_speech_pool(a.seed, SPEECH_COPIES, workers=a.threads)
    print(f"speech pool: {sum(len(v) for v in pool.values())} clips in {time.time() - t0:.0f} s",
          flush=True)
    if a.init:
        tok = Tokenizer.load(os.path.join(a.init, "tokenizer.json"))
    else:
        tok = Tokenizer(train_bpe(T.corpus_texts(np.random.default_rng(a.seed + 1), pool, 20000),
                                  a.merges))
    print(f"tokenizer: {tok.n_vocab} tokens", flush=True)

    cfg = M.Config(vocab_size=tok.n_vocab)
    model = M.MuseNano(cfg)
    if a.init:
        model.load_hf_state(ST.load_safetensors(os.path.join(a.init, "model.safetensors")))
    mean, white = (torch.from_numpy(v).float() for v in nm.patch_whitening())
    model.set_patch_whitening(mean, white, keep_function=bool(a.init))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    other = [p for n, p in model.named_parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": other, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.98))
    warmup = max(1, a.steps // 20)
    seen = 0
    for step in range(1, a.steps + 1):
        lr = a.lr * min(1.0, step / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(
            math.pi * min(1.0, max(0, step - warmup) / max(1, a.steps - warmup)))))
        for g in opt.param_groups:
            g["lr"] = lr
        b = pack_batch(rng, pool, tok, a.rows, a.row_len, T.MIXES[a.mix])
        seen += b["n_samples"]
        logits = forward_batch(model, b)
        loss = F.cross_entropy(logits.view(-1, cfg.vocab_size), b["tgt"].view(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == 1:
            print(f"step {step}/{a.steps} loss {loss.item():.4f} lr {lr:.2e} samples {seen} "
                  f"elapsed {time.time() - t0:.0f} s", flush=True)
    model.fold_patch_whitening()
    round_to_f16(model)
    write_hf_dir(a.out, model, cfg, tok)
    print(f"wrote {a.out} in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
