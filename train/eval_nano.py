#!/usr/bin/env python3
"""Held-out evaluation of Muse Nano through the engine, and the PyTorch reference.

    # accuracy per task, through `muse serve` (OpenAI requests, greedy decoding)
    python3 train/eval_nano.py accuracy --muse build/bin/muse --model models/muse-nano.gguf
    # PyTorch vs engine logits on the evaluation inputs (needs python3-torch)
    python3 train/eval_nano.py logits --muse build/bin/muse --model models/muse-nano.gguf \
        --hf /path/to/muse-nano-hf
    # the reference data tests/e2e/test_muse_nano.cpp checks (needs python3-torch)
    python3 train/eval_nano.py reference --hf /path/to/muse-nano-hf --out tests/data/muse-nano
    # shape confusion of a checkpoint in PyTorch (a quick check while training)
    python3 train/eval_nano.py shapes --hf /path/to/muse-nano-hf --scale 0.5

The evaluation set is generated with its own seed (default 777; training used 1234):
fresh espeak-ng renditions (voice, variant, speed, pitch, noise) and fresh images.
"""
import argparse
import base64
import copy
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nano_media as nm  # noqa: E402
import nano_safetensors as ST  # noqa: E402
import nano_tasks as T  # noqa: E402

EVAL_SEED = 777
EVAL_COPIES = {"digit": 12, "number": 1, "command": 4, "arith": 2}

# What each accuracy row asks and how an answer is checked.
WORDS = {w: i for i, w in enumerate(T.DIGIT_WORDS)}


def numbers_in(text):
    out = [int(x) for x in re.findall(r"-?\d+", text)]
    for w in re.findall(r"[a-z]+", text.lower()):
        if w in WORDS:
            out.append(WORDS[w])
    return out


def check_name(s, text, tool_calls):
    """The colour and/or shape words of the expected answer, and no other ones."""
    t, want = text.lower(), s["answer"].lower()
    vocab = list(nm.COLORS) + nm.SHAPES
    return all((re.search(rf"\b{w}\b", t) is not None) == (re.search(rf"\b{w}\b", want) is not None)
               for w in vocab)


def check_count(s, text, tool_calls):
    nums = numbers_in(text)
    return len(nums) >= 1 and nums[0] == s["count"]


def check_value(s, text, tool_calls):
    nums = numbers_in(text)
    return len(nums) >= 1 and nums[-1] == s["value"]


def check_side(s, text, tool_calls):
    return text.strip().lower() == s["answer"].lower()


def check_weather(s, text, tool_calls):
    if len(tool_calls) != 1:
        return False
    f = tool_calls[0].get("function", {})
    try:
        args = json.loads(f.get("arguments", ""))
    except (TypeError, ValueError):
        return False
    return f.get("name") == "get_weather" and args == {"city": s["city"]}


def check_mixed(s, text, tool_calls):
    nums = numbers_in(text)
    if s["answer"].startswith("The shape is"):
        return s["color"] in text.lower() and nums[-1:] == [s["value"]]
    return len(nums) >= 2 and nums[0] == s["count"] and nums[-1] == s["value"]


# (row name, task generator, how many, checker, target). The generator's answer
# message is dropped; the request is the rest of the conversation.
ROWS = [
    ("shape/colour naming", T.task_name, 200, check_name, 0.95),
    ("counting 1-5", T.task_count, 200, check_count, 0.90),
    ("spoken digits", T.task_digit, 200, check_value, 0.90),
    ("spoken arithmetic", T.task_spoken_arith, 200, check_value, 0.85),
    ("weather tool call", T.task_weather, 200, check_weather, 0.95),
    ("left/right", T.task_side, 100, check_side, None),
    ("spoken numbers 10-99", T.task_number, 100, check_value, None),
    ("text arithmetic", T.task_text_arith, 100, check_value, None),
    ("image + audio", T.task_mixed, 100, check_mixed, None),
]


def eval_set(seed=EVAL_SEED, scale=1.0):
    pool = T.build_speech_pool(seed, EVAL_COPIES)
    rng = np.random.default_rng(seed + 1)
    rows = []
    for name, gen, n, check, target in ROWS:
        items = []
        while len(items) < max(1, int(n * scale)):
            s = gen(rng, pool)
            if gen is T.task_weather and s["task"] != "weather":
                continue  # the accuracy row asks for the call itself
            s.setdefault("tools", None)
            last = s["messages"][-1]
            s["answer"] = last.get("content")
            s["messages"] = s["messages"][:-1]
            items.append(s)
        rows.append((name, items, check, target))
    return rows


def openai_messages(s):
    """The sample as an OpenAI request body's messages (media as data URLs)."""
    out = []
    for m in s["messages"]:
        m = dict(m)
        if isinstance(m.get("content"), list):
            parts = []
            for p in m["content"]:
                if p["type"] == "text":
                    parts.append({"type": "text", "text": p["text"]})
                elif p["type"] == "image":
                    b64 = base64.b64encode(nm.encode_png(p["pixels"])).decode()
                    parts.append({"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64}})
                else:
                    b64 = base64.b64encode(nm.encode_wav(p["pcm16"])).decode()
                    parts.append({"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}})
            m["content"] = parts
        out.append(m)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, muse, model, threads):
        self.port = free_port()
        self.proc = subprocess.Popen([muse, "serve", "--model", model, "--host", "127.0.0.1",
                                      "--port", str(self.port), "--threads", str(threads),
                                      "--parallel", "8"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/models", timeout=1) as r:
                    self.name = json.loads(r.read())["data"][0]["id"]
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("muse serve did not start")

    def chat(self, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())

    def close(self):
        self.proc.terminate()
        self.proc.wait()


def cmd_accuracy(a):
    rows = eval_set(a.seed, a.scale)
    server = Server(a.muse, a.model, a.threads)
    results = []
    try:
        for name, items, check, target in rows:
            def run(s):
                body = {"model": server.name, "messages": openai_messages(s), "temperature": 0,
                        "max_tokens": 64}
                if s.get("tools"):
                    body["tools"] = s["tools"]
                msg = server.chat(body)["choices"][0]["message"]
                text = msg.get("content") or ""
                return check(s, text, msg.get("tool_calls") or []), text, msg.get("tool_calls")
            with ThreadPoolExecutor(8) as ex:
                outs = list(ex.map(run, items))
            ok = sum(o[0] for o in outs)
            fails = [(s.get("answer"), o[1], o[2]) for s, o in zip(items, outs) if not o[0]][:3]
            results.append({"task": name, "n": len(items), "correct": ok, "accuracy": ok / len(items),
                            "target": target, "examples_wrong": fails})
            print(f"{name:24s} {ok:4d}/{len(items):4d} = {ok / len(items):6.1%}"
                  + (f"  (target {target:.0%})" if target else ""), flush=True)
    finally:
        server.close()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"seed": a.seed, "model": a.model, "results": results}, f, indent=2, default=str)
    missed = [r for r in results if r["target"] and r["accuracy"] < r["target"]]
    return 1 if missed else 0


# ---------------------------------------------------------------- logits

def torch_model(hf):
    import nano_model as M
    import torch
    cfg = json.load(open(os.path.join(hf, "config.json")))
    model = M.MuseNano(M.Config(**{k: v for k, v in cfg.items() if isinstance(v, (int, float))}))
    model.load_hf_state(ST.load_safetensors(os.path.join(hf, "model.safetensors")))
    model.eval()
    torch.set_num_threads(1)
    return model, torch


def prompt_inputs(tok, s):
    """ids (generation prompt included), media rows, and the file bytes."""
    ids, _, media = T.render(tok, s, add_generation_prompt=True)
    return ids, media


def torch_logits(model, torch, ids, media):
    t = torch.tensor([ids])
    img = [m for m in media if m[0] == "image"]
    aud = [m for m in media if m[0] == "audio"]
    cat = lambda xs: torch.from_numpy(np.concatenate(xs)) if xs else None
    img_rows = cat([m[2] for m in img])
    img_at = cat([m[1] + np.arange(len(m[2])) for m in img])
    img_patch = cat([np.arange(len(m[2])) for m in img])
    aud_rows = cat([m[2] for m in aud])
    aud_at = cat([m[1] + np.arange(len(m[2])) for m in aud])
    with torch.no_grad():
        x = model.embed(t, img_rows, img_at, img_patch, aud_rows, aud_at)
        pos = torch.arange(len(ids))[None]
        mask = torch.ones(1, len(ids), len(ids), dtype=torch.bool).tril()
        return model(x, pos, mask)[0].numpy()


def torch_greedy(model, torch, tok, ids, media, limit=24):
    """PyTorch's greedy continuation up to <|im_end|> (which ends it, not part of it)."""
    out = []
    while len(out) < limit:
        nxt = int(torch_logits(model, torch, ids + out, media)[-1].argmax())
        if nxt == tok.id("<|im_end|>"):
            break
        out.append(nxt)
    return out


def write_inputs(path, ids, s):
    """muse debug logits inputs: input_ids, pixel_values + image_grid_thw,
    input_features (one clip at most per sample here)."""
    parts = [p for m in s["messages"] if isinstance(m.get("content"), list) for p in m["content"]]
    imgs = [p for p in parts if p["type"] == "image"]
    auds = [p for p in parts if p["type"] == "audio"]
    tensors = {"input_ids": np.array(ids, np.int32)}
    if imgs:
        tensors["pixel_values"] = np.concatenate([nm.image_patches(p["pixels"]) for p in imgs])
        tensors["image_grid_thw"] = np.array([[1, 8, 8]] * len(imgs), np.int32)
    if auds:
        assert len(auds) == 1
        mel = nm.log_mel(auds[0]["pcm16"].astype(np.float32) / 32768)
        tensors["input_features"] = np.ascontiguousarray(mel.T)
    ST.save_safetensors(path, tensors)


def cmd_logits(a):
    from nano_tokenizer import Tokenizer
    tok = Tokenizer.load(os.path.join(a.hf, "tokenizer.json"))
    model, torch = torch_model(a.hf)
    worst, n = 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, items, _, _ in eval_set(a.seed, a.scale):
            row_worst = 0.0
            for s in items:
                ids, media = prompt_inputs(tok, s)
                ref = torch_logits(model, torch, ids, media)
                inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
                write_inputs(inp, ids, s)
                subprocess.run([a.muse, "debug", "logits", "--model", a.model, "--inputs", inp,
                                "--out", out, "--threads", str(a.threads)], check=True, capture_output=True)
                got = ST.load_safetensors(out)["logits"].reshape(ref.shape)
                row_worst = max(row_worst, float(np.abs(got - ref).max()))
                n += 1
            print(f"{name:24s} max |engine - pytorch| = {row_worst:.2e}", flush=True)
            worst = max(worst, row_worst)
    print(f"all {n} inputs: max abs logit difference {worst:.2e}")
    return 0 if worst <= 1e-3 else 1


def cmd_reference(a):
    """A few evaluation inputs with their files, the messages, the ids PyTorch's
    renderer gives, and PyTorch's logits, for the engine's tests."""
    from nano_tokenizer import Tokenizer
    tok = Tokenizer.load(os.path.join(a.hf, "tokenizer.json"))
    model, torch = torch_model(a.hf)
    os.makedirs(a.out, exist_ok=True)
    cases, tensors = [], {}
    for name, items, check, _ in eval_set(a.seed, 0.25):
        # One item per row: the first the model answers right (the tests check the
        # engine against the model, the accuracy command measures the model), and for
        # naming one whose question asks for both the colour and the shape.
        s = items[0]
        for cand in items:
            if name.startswith("shape") and " " not in cand["answer"].strip(".").split(" ", 1)[-1]:
                continue
            ids, media = prompt_inputs(tok, cand)
            if check(cand, tok.decode(torch_greedy(model, torch, tok, ids, media)), []):
                s = cand
                break
        k = len(cases)
        ids, media = prompt_inputs(tok, s)
        ref = torch_logits(model, torch, ids, media)
        msgs = copy.deepcopy(s["messages"])
        for m in msgs:
            if isinstance(m.get("content"), list):
                for j, p in enumerate(m["content"]):
                    if p["type"] == "image":
                        fn = f"case{k}.png"
                        open(os.path.join(a.out, fn), "wb").write(nm.encode_png(p.pop("pixels")))
                        p["file"] = fn
                    elif p["type"] == "audio":
                        fn = f"case{k}.wav"
                        open(os.path.join(a.out, fn), "wb").write(nm.encode_wav(p.pop("pcm16")))
                        p["file"] = fn
        facts = {k: s[k] for k in ("color", "shape", "count", "value", "city") if k in s}
        cases.append({"task": name, "messages": msgs, "tools": s.get("tools"), "answer": s["answer"],
                      "facts": facts})
        tensors[f"case{k}.ids"] = np.array(ids, np.int32)
        tensors[f"case{k}.greedy"] = np.array(torch_greedy(model, torch, tok, ids, media), np.int32)
        tensors[f"case{k}.logits"] = ref.astype(np.float32)
    ST.save_safetensors(os.path.join(a.out, "reference.safetensors"), tensors)
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print(f"wrote {len(cases)} cases to {a.out}")
    return 0


def cmd_shapes(a):
    """Shape confusion of a checkpoint in PyTorch: "What shape is this?" on held-out
    single-shape images; a quick check of the image pathway while training."""
    from collections import Counter
    from nano_tokenizer import Tokenizer
    tok = Tokenizer.load(os.path.join(a.hf, "tokenizer.json"))
    model, torch = torch_model(a.hf)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    confusion, n = Counter(), int(round(200 * a.scale))
    for _ in range(n):
        img, shapes = nm.draw_shapes(rng, 1)
        s = {"messages": [{"role": "user", "content": [T.image_part(img),
                                                       T.text_part("What shape is this?")]}]}
        ids, media = prompt_inputs(tok, s)
        said = [w for w in nm.SHAPES if w in tok.decode(torch_greedy(model, torch, tok, ids, media, 8))]
        confusion[shapes[0]["shape"], said[0] if said else "-"] += 1
    print("true \\ said " + " ".join(f"{w:>9}" for w in nm.SHAPES + ["-"]))
    for t in nm.SHAPES:
        print(f"{t:>12} " + " ".join(f"{confusion[t, w]:>9}" for w in nm.SHAPES + ["-"]))
    right = sum(confusion[t, t] for t in nm.SHAPES)
    print(f"shape accuracy {right}/{n} = {100 * right / n:.1f}%")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ["accuracy", "logits", "reference", "shapes"]:
        p = sub.add_parser(name)
        p.add_argument("--seed", type=int, default=EVAL_SEED)
        p.add_argument("--scale", type=float, default=1.0, help="fraction of the full set")
        p.add_argument("--muse", default="build/bin/muse")
        p.add_argument("--model", default="models/muse-nano.gguf")
        p.add_argument("--hf")
        p.add_argument("--out")
        p.add_argument("--json")
        p.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    return {"accuracy": cmd_accuracy, "logits": cmd_logits, "reference": cmd_reference,
            "shapes": cmd_shapes}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
