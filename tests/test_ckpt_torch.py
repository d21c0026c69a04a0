#!/usr/bin/env python3
"""Loads a genlab checkpoint into PyTorch with the snippet from docs/checkpoint.md.

Usage: test_ckpt_torch.py CKPT_EXAMPLE_BINARY DOC_PATH
Exit status: 0 passed, 1 failed, 77 skipped (no torch or no zstd).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def extract_snippet(doc_path):
    with open(doc_path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- snippet:load -->\s*```python\n(.*?)```\s*<!-- /snippet:load -->", text, re.S)
    if not m:
        fail(f"{doc_path}: no ```python block between <!-- snippet:load --> and <!-- /snippet:load -->")
    return m.group(1)


def check(tensors, metadata, torch):
    expected = {
        "enc.fc_mu.weight": ([2, 3], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
        "enc.fc_mu.bias": ([2], [-1.5, 2.25]),
    }
    if sorted(tensors) != sorted(expected):
        fail(f"tensor names {sorted(tensors)}, expected {sorted(expected)}")
    for name, (shape, values) in expected.items():
        t = tensors[name]
        if not isinstance(t, torch.Tensor):
            fail(f"{name} is a {type(t).__name__}, not a torch.Tensor")
        if t.dtype != torch.float32:
            fail(f"{name} has dtype {t.dtype}, expected torch.float32")
        if list(t.shape) != shape:
            fail(f"{name} has shape {list(t.shape)}, expected {shape}")
        got = t.flatten().tolist()
        # Exact: every value is representable in float32.
        if got != values:
            fail(f"{name} holds {got}, expected {values}")
    want_meta = {"format": "genlab-vae", "format_version": "1", "arch": "dense"}
    if metadata != want_meta:
        fail(f"metadata {metadata}, expected {want_meta}")
    # The tensors must be usable like any others (the snippet copies, so
    # they are writable and independent of each other).
    w = tensors["enc.fc_mu.weight"]
    w.add_(1.0)
    if tensors["enc.fc_mu.bias"].tolist() != [-1.5, 2.25]:
        fail("writing one tensor changed another")
    y = torch.nn.functional.linear(torch.ones(1, 3), w, tensors["enc.fc_mu.bias"])
    if y.tolist() != [[4.5, 17.25]]:
        fail(f"linear layer with the loaded weights gave {y.tolist()}, expected [[4.5, 17.25]]")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    example, doc_path = sys.argv[1], sys.argv[2]
    try:
        import torch
    except ImportError:
        print("SKIP: torch is not importable by " + sys.executable)
        return SKIP
    if shutil.which("zstd") is None:
        print("SKIP: zstd is not on PATH")
        return SKIP

    snippet = extract_snippet(doc_path)
    with tempfile.TemporaryDirectory(prefix="genlab_torch_") as tmp:
        path = os.path.join(tmp, "example.safetensors.zst")
        run = subprocess.run([example, path], capture_output=True, text=True)
        if run.returncode != 0:
            fail(f"{example} exited {run.returncode}: {run.stderr.strip()}")
        scope = {"__name__": "genlab_snippet"}
        try:
            exec(compile(snippet, doc_path + " (snippet:load)", "exec"), scope)
            if "load_genlab" not in scope:
                fail("the snippet defines no load_genlab function")
            tensors, metadata = scope["load_genlab"](path)
        except Exception as exc:  # any failure of the documented code is a test failure
            fail(f"the snippet from {doc_path} failed: {type(exc).__name__}: {exc}")
        check(tensors, metadata, torch)
    print("ok: docs/checkpoint.md snippet loads the example checkpoint into torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
