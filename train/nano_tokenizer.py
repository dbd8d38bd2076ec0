"""Muse Nano's byte-level BPE tokenizer: trained on the synthetic corpus, saved
as a Hugging Face tokenizer.json (which `muse convert` copies into the GGUF).

Pre-tokenization is Qwen2's pattern (single digits, contractions, letters with one
leading non-letter, ...). Python's `re` has no \\p{L}/\\p{N}; the training corpus
is ASCII, where [A-Za-z] and [0-9] are the same classes, and the engine applies
the real pattern (tests/model/test_muse_nano.cpp checks that both give the same
ids on the evaluation prompts).
"""
import collections
import json
import re

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_ASCII_PATTERN = re.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]|"
                            r" ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Control tokens (special: never produced by ordinary text) and added tokens
# (whole words the model reads and writes as one token).
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_start|>", "<|image|>",
                  "<|image_end|>", "<|audio_start|>", "<|audio|>", "<|audio_end|>"]
ADDED_TOKENS = ["<tool_call>", "</tool_call>"]


def _bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_CHARS = _bytes_to_unicode()


def pre_tokenize(text):
    return [m.group(0) for m in _ASCII_PATTERN.finditer(text)]


def _to_symbols(word):
    return tuple(BYTE_CHARS[b] for b in word.encode("utf-8"))


def train_bpe(texts, n_merges):
    words = collections.Counter()
    for t in texts:
        for w in pre_tokenize(t):
            words[_to_symbols(w)] += 1
    words = {w: c for w, c in words.items()}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if pairs[best] < 2:
            break
        merges.append(best)
        new_words = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + c
        words = new_words
    return merges


class Tokenizer:
    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        self.vocab = {}
        for b in range(256):
            self.vocab[BYTE_CHARS[b]] = len(self.vocab)
        for a, b in self.merges:
            if a + b not in self.vocab:
                self.vocab[a + b] = len(self.vocab)
        self.added = {}
        for t in SPECIAL_TOKENS + ADDED_TOKENS:
            self.added[t] = len(self.vocab) + len(self.added)
        self.n_vocab = len(self.vocab) + len(self.added)
        self.id_to_piece = {i: p for p, i in self.vocab.items()}
        self.id_to_piece.update({i: p for p, i in self.added.items()})
        self.byte_of = {c: b for b, c in BYTE_CHARS.items()}
        self._split = re.compile("(" + "|".join(re.escape(t) for t in self.added) + ")")
        self._cache = {}

    def _bpe(self, word):
        if word in self._cache:
            return self._cache[word]
        syms = list(_to_symbols(word))
        while len(syms) > 1:
            best, best_rank = None, None
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best is None:
                break
            syms[best:best + 2] = [syms[best] + syms[best + 1]]
        ids = [self.vocab[s] for s in syms]
        self._cache[word] = ids
        return ids

    def encode(self, text):
        ids = []
        for part in self._split.split(text):
            if not part:
                continue
            if part in self.added:
                ids.append(self.added[part])
            else:
                for w in pre_tokenize(part):
                    ids.extend(self._bpe(w))
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            p = self.id_to_piece[i]
            if p in self.added:
                out += p.encode()
            else:
                out += bytes(self.byte_of[c] for c in p)
        return out.decode("utf-8", errors="replace")

    def id(self, token):
        return self.added[token]

    def to_json(self):
        added = [{"id": self.added[t], "content": t, "single_word": False, "lstrip": False,
                  "rstrip": False, "normalized": False, "special": t in SPECIAL_TOKENS}
                 for t in SPECIAL_TOKENS + ADDED_TOKENS]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated",
                 "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                 "use_regex": False}]},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                        "use_regex": False},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": self.vocab, "merges": [[a, b] for a, b in self.merges]},
        }

    def save(self, path):
        with open(path, "w") as f:
            json.dump(self.to_json(), f, ensure_ascii=False)

    @staticmethod
    def load(path):
        with open(path) as f:
            j = json.load(f)
        return Tokenizer([tuple(m) for m in j["model"]["merges"]])
