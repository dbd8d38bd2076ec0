"""Minimal safetensors reading and writing (F32 and I32 tensors), without torch."""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "I32": np.int32}


def save_safetensors(path, tensors):
    """tensors: name -> array; integer arrays are stored as I32, the rest as F32."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        dt = "I32" if np.issubdtype(np.asarray(a).dtype, np.integer) else "F32"
        a = np.ascontiguousarray(a, dtype=_DTYPES[dt])
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=_DTYPES[info["dtype"]]).reshape(info["shape"]).copy()
    return out
