#!/usr/bin/python3
"""genlab_torch — the PyTorch twin of genlab's VAE engine (see DESIGN.md).

Importable pieces shared by tools/torch_vae.py and tools/dump_fixtures.py:

  study_split()              the study's 48,000 / 12,000 split of MNIST train
  load_mnist(assets_dir)     the four IDX files (zstd-compressed) as uint8 arrays
  ConvVAE(d), DenseVAE(d)    the seed's two VAEs; state_dict names are genlab's
                             checkpoint tensor names (enc.conv1.weight, ...)
  vae_loss(...)              batch sums of BCE and KLD, as pytorch/examples
  write_safetensors_zst(...) genlab's checkpoint format (safetensors in zstd)
  read_safetensors_zst(...)  the reverse, for checks and for loading checkpoints

Run it directly (`/usr/bin/python3 tools/genlab_torch.py`) for a self-check.
Only Debian's python3-torch / python3-numpy and the zstd CLI are needed.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MASK64 = (1 << 64) - 1
MNIST_TRAIN_N = 60000
MNIST_TEST_N = 10000
STUDY_TRAIN_N = 48000
STUDY_TEST_N = 12000

SPLIT_ANCHORS_TRAIN = (17103, 3854, 34173, 44489, 57167)  # p[0..4]
SPLIT_ANCHORS_TEST = (27329, 59345, 22634, 26275, 21438)  # p[48000..48004]

CONV_PARAMS_D2 = 59525
DENSE_PARAMS_D2 = 1068820


# ---------------------------------------------------------------- the split

def splitmix64(seed):
    """Generator of splitmix64 outputs (all arithmetic mod 2^64)."""
    state = seed & MASK64
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield z ^ (z >> 31)


def study_split():
    """The permutation p of 0..59999 (DESIGN.md): Fisher–Yates, i from 59999
    down to 1, j = r mod (i + 1), r from splitmix64 seeded with 0.
    Returns (p, train_idx, test_idx) as int64 numpy arrays: train_idx =
    p[:48000], test_idx = p[48000:]."""
    p = list(range(MNIST_TRAIN_N))
    rng = splitmix64(0)
    for i in range(MNIST_TRAIN_N - 1, 0, -1):
        j = next(rng) % (i + 1)
        p[i], p[j] = p[j], p[i]
    p = np.asarray(p, dtype=np.int64)
    return p, p[:STUDY_TRAIN_N].copy(), p[STUDY_TRAIN_N:].copy()


def check_split(p):
    assert tuple(int(v) for v in p[0:5]) == SPLIT_ANCHORS_TRAIN, p[0:5]
    assert tuple(int(v) for v in p[48000:48005]) == SPLIT_ANCHORS_TEST, p[48000:48005]
    assert np.array_equal(np.sort(p), np.arange(MNIST_TRAIN_N)), "not a permutation"


# ---------------------------------------------------------------- MNIST

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.idx.zst",
    "train_labels": "train-labels-idx1-ubyte.idx.zst",
    "test_images": "t10k-images-idx3-ubyte.idx.zst",
    "test_labels": "t10k-labels-idx1-ubyte.idx.zst",
}


def default_assets_dir():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets")


def _zstd_cat(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not found (expected MNIST IDX file, zstd-compressed)")
    res = subprocess.run(["zstd", "-dc", "--", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{path}: zstd -dc failed: {res.stderr.decode(errors='replace').strip()}")
    return res.stdout


def read_idx(path, want_dims):
    """An IDX ubyte file (big-endian header) as a uint8 numpy array."""
    buf = _zstd_cat(path)
    if len(buf) < 4:
        raise ValueError(f"{path}: truncated IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", buf[:4])
    if zero != 0 or dtype != 0x08 or ndim != want_dims:
        raise ValueError(f"{path}: bad IDX magic {buf[:4].hex()} (want ubyte, {want_dims} dims)")
    hdr = 4 + 4 * ndim
    if len(buf) < hdr:
        raise ValueError(f"{path}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, buf[4:hdr])
    count = int(np.prod(dims))
    if len(buf) != hdr + count:
        raise ValueError(f"{path}: {len(buf) - hdr} data bytes, header says {count}")
    return np.frombuffer(buf, dtype=np.uint8, count=count, offset=hdr).reshape(dims).copy()


def load_mnist(assets_dir=None):
    """Returns dict with train_images [60000,28,28], train_labels [60000],
    test_images [10000,28,28], test_labels [10000], all uint8 numpy."""
    assets_dir = assets_dir or default_assets_dir()
    out = {}
    for key, name in MNIST_FILES.items():
        out[key] = read_idx(os.path.join(assets_dir, name), 3 if key.endswith("images") else 1)
    assert out["train_images"].shape == (MNIST_TRAIN_N, 28, 28), out["train_images"].shape
    assert out["test_images"].shape == (MNIST_TEST_N, 28, 28), out["test_images"].shape
    assert out["train_labels"].shape == (MNIST_TRAIN_N,)
    assert out["test_labels"].shape == (MNIST_TEST_N,)
    return out


def to_float(images_u8):
    """uint8 [N,28,28] -> float32 tensor [N,1,28,28], pixel / 255."""
    return torch.from_numpy(images_u8.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)


# ---------------------------------------------------------------- models
#
# PyTorch's default init (Linear, Conv2d, ConvTranspose2d: kaiming_uniform
# with a = sqrt(5) for weights, U(-1/sqrt(fan_in), +) for biases) is exactly
# the U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of DESIGN.md, fan_in = size(1) *
# kernel area, so nothing is re-initialised here.

class ConvEncoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, stride=2, padding=1)   # 28 -> 14
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)  # 14 -> 7
        self.fc_mu = nn.Linear(64 * 7 * 7, d)
        self.fc_logvar = nn.Linear(64 * 7 * 7, d)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        h = h.reshape(h.shape[0], -1)  # C·H·W order
        return self.fc_mu(h), self.fc_logvar(h)


class ConvDecoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, 64 * 7 * 7)
        self.deconv1 = nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1)  # 7 -> 14
        self.deconv2 = nn.ConvTranspose2d(32, 1, 3, stride=2, padding=1, output_padding=1)   # 14 -> 28

    def forward(self, z):
        h = F.relu(self.fc(z)).reshape(z.shape[0], 64, 7, 7)
        h = F.relu(self.deconv1(h))
        return torch.sigmoid(self.deconv2(h))


class DenseEncoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(784, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc_mu = nn.Linear(256, d)
        self.fc_logvar = nn.Linear(256, d)

    def forward(self, x):
        h = F.relu(self.fc1(x.reshape(x.shape[0], 784)))
        h = F.relu(self.fc2(h))
        return self.fc_mu(h), self.fc_logvar(h)


class DenseDecoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(d, 256)
        self.fc2 = nn.Linear(256, 512)
        self.fc3 = nn.Linear(512, 784)

    def forward(self, z):
        h = F.relu(self.fc1(z))
        h = F.relu(self.fc2(h))
        return torch.sigmoid(self.fc3(h))  # [N, 784]


class _VAE(nn.Module):
    arch = None

    def __init__(self, d, enc, dec):
        super().__init__()
        self.latent = d
        self.enc = enc
        self.dec = dec

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z)

    def forward(self, x, eps=None):
        """x: [N,1,28,28] (conv) or [N,784] (dense; [N,1,28,28] also taken).
        eps: [N,d] standard normal; None means z = mu. Returns (xhat, mu,
        logvar) with xhat shaped like the model's natural input."""
        mu, logvar = self.enc(x)
        z = mu if eps is None else mu + torch.exp(0.5 * logvar) * eps
        return self.dec(z), mu, logvar

    def prepare(self, x):
        """Reshape a [N,1,28,28] float batch to this model's input shape."""
        return x.reshape(x.shape[0], 1, 28, 28) if self.arch == "conv" else x.reshape(x.shape[0], 784)


class ConvVAE(_VAE):
    arch = "conv"

    def __init__(self, d):
        super().__init__(d, ConvEncoder(d), ConvDecoder(d))


class DenseVAE(_VAE):
    arch = "dense"

    def __init__(self, d):
        super().__init__(d, DenseEncoder(d), DenseDecoder(d))


def make_vae(arch, d):
    if arch == "conv":
        return ConvVAE(d)
    if arch == "dense":
        return DenseVAE(d)
    raise ValueError(f"unknown arch {arch!r} (conv or dense)")


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def vae_loss(xhat, x, mu, logvar):
    """Batch sums (bce, kld). BCE over all pixels; F.binary_cross_entropy
    clamps log() at -100, which only matters for saturated sigmoids."""
    bce = F.binary_cross_entropy(xhat, x.reshape(xhat.shape), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce, kld


# ---------------------------------------------------------------- checkpoints

def safetensors_bytes(tensors, metadata=None):
    """safetensors layout: u64 LE header length, JSON header (metadata first,
    then tensors in insertion order, offsets contiguous), padded with spaces
    to a multiple of 8, then the raw little-endian F32 data."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        if t.dtype != torch.float32:
            raise TypeError(f"{name}: dtype {t.dtype}, only float32 is written")
        a = t.detach().cpu().contiguous().numpy().astype("<f4", copy=False)
        b = a.tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hjson = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    hjson += b" " * ((-len(hjson)) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def write_safetensors_zst(path, tensors, metadata=None, level=19):
    """Writes `tensors` (dict name -> float32 tensor, insertion order kept) and
    `metadata` (str -> str) as safetensors, compressed by `zstd -q -<level>
    --check` (with the frame's content size recorded). Atomic: temporary file in the same directory, then rename."""
    raw = safetensors_bytes(tensors, metadata)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".zst", dir=d)
    os.close(fd)
    try:
        # --stream-size records the content size in the frame header (zstd
        # cannot know it from a pipe otherwise), so readers can size buffers
        res = subprocess.run(["zstd", "-q", f"-{level}", "--check", f"--stream-size={len(raw)}",
                              "-f", "-o", tmp],
                             input=raw, stderr=subprocess.PIPE, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"zstd failed: {res.stderr.decode(errors='replace').strip()}")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(raw)


def read_safetensors_zst(path):
    """Returns (tensors: dict name -> float32 tensor, metadata: dict)."""
    buf = _zstd_cat(path)
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = buf[8 + n:]
    out = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name}: dtype {info['dtype']} not supported here")
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype="<f4").astype(np.float32).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta


# ---------------------------------------------------------------- self-check

def self_check(assets_dir=None, with_data=True):
    p, tr, te = study_split()
    check_split(p)
    print(f"study_split: ok  p[0..4]={list(p[:5])}  p[48000..48004]={list(p[48000:48005])}")
    conv, dense = ConvVAE(2), DenseVAE(2)
    assert param_count(conv) == CONV_PARAMS_D2, param_count(conv)
    assert param_count(dense) == DENSE_PARAMS_D2, param_count(dense)
    print(f"params: conv d=2 {param_count(conv)}, dense d=2 {param_count(dense)}: ok")
    want = {"enc.conv1.weight": (32, 1, 3, 3), "enc.conv2.weight": (64, 32, 3, 3),
            "enc.fc_mu.weight": (2, 3136), "dec.fc.weight": (3136, 2),
            "dec.deconv1.weight": (64, 32, 3, 3), "dec.deconv2.weight": (32, 1, 3, 3),
            "dec.deconv2.bias": (1,)}
    sd = conv.state_dict()
    for k, s in want.items():
        assert tuple(sd[k].shape) == s, (k, sd[k].shape)
    # init bound for the transposed conv: 1/sqrt(out * k^2) = 1/3 for deconv2
    assert sd["dec.deconv2.weight"].abs().max() <= 1 / 3 + 1e-7
    with tempfile.TemporaryDirectory() as td:
        f = os.path.join(td, "t.safetensors.zst")
        write_safetensors_zst(f, dict(conv.state_dict()), {"format": "test"}, level=3)
        back, meta = read_safetensors_zst(f)
        assert meta == {"format": "test"}
        assert list(back) == list(conv.state_dict())
        assert all(torch.equal(back[k], v) for k, v in conv.state_dict().items())
    print("safetensors round trip: ok")
    if with_data:
        m = load_mnist(assets_dir)
        print("mnist:", {k: (v.shape, v.dtype.name) for k, v in m.items()},
              "first study-train labels:", list(m["train_labels"][tr[:5]]))
    return True


if __name__ == "__main__":
    self_check(sys.argv[1] if len(sys.argv) > 1 else None)
