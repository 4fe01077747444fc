#!/usr/bin/python3
"""Evaluates minformer checkpoints with PyTorch, independently of the C code.

Reads each safetensors file directly (struct + json, no safetensors package),
verifies the per-tensor CRC-32 checksums of docs/checkpoint.md, rebuilds the model for any variant from the metadata with the MinFormer
module of tools/torch_reference.py, loads the test split from the data
directory (IDX raw or gzip, CIFAR-10 binary batches; parsed with struct and
numpy), normalizes it with the checkpoint's mean/std as minformer does, and
prints loss and accuracy. `minformer eval` on the same checkpoint and images
should count the same correct predictions (at most a near-tie or two apart
from float rounding).

Run it with Debian's interpreter, which has PyTorch and numpy:

    /usr/bin/python3 tools/torch_checkpoint.py CHECKPOINT... [--data DIR]
        [--dataset NAME] [--limit-test N] [--batch B] [--threads T] [--json]

The data directory is --data, else $MINFORMER_DATA, else ./data. With --json
each checkpoint gives one line: {"checkpoint", "dataset", "count", "correct",
"test_acc", "test_loss"}. Exit status 0, 1 on a bad file, 2 on bad usage.
"""
import argparse
import gzip
import json
import os
import re
import stat
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import MinFormer  # noqa: E402  (the model code of the parity tests)

OPTIMIZER_PREFIXES = ("optimizer.adam_m.", "optimizer.adam_v.")
MAX_HEADER = 100 << 20  # MF_CHECKPOINT_MAX_HEADER
CRC32_PREFIX = "crc32."  # MF_CHECKPOINT_CRC32_PREFIX


class CheckpointError(Exception):
    pass


# ---- safetensors ---------------------------------------------------------------

def read_regular_file(path):
    """The bytes of path, refusing a FIFO or device before anything waits on it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError("%s: not a regular file" % path)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as f:
            fd = -1
            return f.read()
    finally:
        if fd >= 0:
            os.close(fd)


def verify_checksums(path, meta, spans, data):
    """The rules of mf_checkpoint_read_header and mf_checkpoint_load: every
    checksum names a tensor, the tensors have all one or none (version 2: all),
    and each matches zlib's CRC-32 of the tensor's bytes."""
    crcs = {k[len(CRC32_PREFIX):]: v for k, v in meta.items() if k.startswith(CRC32_PREFIX)}
    for name in crcs:
        if name not in spans:
            raise CheckpointError("%s: metadata '%s%s' is the checksum of a tensor the file does "
                                  "not hold" % (path, CRC32_PREFIX, name))
    unchecked = [name for name in spans if name not in crcs]
    if unchecked and (crcs or (meta.get("format") == "minformer" and meta.get("version") != "1")):
        raise CheckpointError("%s: tensor '%s' has no checksum (metadata '%s%s')"
                              % (path, unchecked[0], CRC32_PREFIX, unchecked[0]))
    for name, stored in crcs.items():
        if not re.fullmatch("[0-9a-f]{8}", stored):
            raise CheckpointError("%s: metadata '%s%s' = '%s': expected a CRC-32 as 8 lowercase "
                                  "hexadecimal digits" % (path, CRC32_PREFIX, name, stored))
        begin, end = spans[name]
        computed = zlib.crc32(data[begin:end])
        if computed != int(stored, 16):
            raise CheckpointError("%s: tensor '%s' fails its checksum (stored %s, computed %08x)"
                                  % (path, name, stored, computed))


def read_safetensors(path):
    """(metadata dict, {name: float32 numpy array}) of an F32 safetensors file,
    with the structural and checksum checks of docs/checkpoint.md."""
    blob = read_regular_file(path)
    if len(blob) < 8:
        raise CheckpointError("%s: %d bytes, too short for a safetensors file" % (path, len(blob)))
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER or n > len(blob) - 8:
        raise CheckpointError("%s: header length %d does not fit the file (%d bytes)"
                              % (path, n, len(blob)))
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError("%s: invalid JSON header: %s" % (path, e))
    if not isinstance(header, dict):
        raise CheckpointError("%s: the header is not a JSON object" % path)
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError("%s: __metadata__ is not an object of strings" % path)
    data = memoryview(blob)[8 + n:]
    tensors, spans = {}, {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError("%s: tensor '%s': malformed entry" % (path, name))
        if entry["dtype"] != "F32":
            raise CheckpointError("%s: tensor '%s' has dtype %s, not F32" % (path, name, entry["dtype"]))
        shape = [int(d) for d in entry["shape"]]
        begin, end = (int(x) for x in entry["data_offsets"])
        numel = int(np.prod(shape)) if shape else 1
        if not 0 <= begin <= end <= len(data) or end - begin != 4 * numel:
            raise CheckpointError("%s: tensor '%s': data_offsets [%d, %d] do not fit shape %s "
                                  "in a %d-byte data section" % (path, name, begin, end, shape,
                                                                  len(data)))
        tensors[name] = np.frombuffer(data, dtype="<f4", count=numel, offset=begin).reshape(shape)
        spans[name] = (begin, end)
    pos = 0
    for begin, end in sorted(spans.values()):
        if begin != pos:
            raise CheckpointError("%s: the tensors do not tile the data section" % path)
        pos = end
    if pos != len(data):
        raise CheckpointError("%s: %d bytes after the last tensor" % (path, len(data) - pos))
    verify_checksums(path, meta, spans, data)
    return meta, tensors


def config_from_metadata(path, meta):
    """The model configuration as torch_reference.MinFormer takes it."""
    if meta.get("format") != "minformer":
        raise CheckpointError("%s: not a minformer checkpoint (metadata 'format')" % path)
    try:
        cfg = {k: int(meta[k]) for k in ("image_size", "channels", "classes", "patch", "dim",
                                         "layers", "heads", "mlp_ratio")}
        cfg.update(qk=meta["qk"], vo=meta["vo"], pool=meta["pool"])
    except (KeyError, ValueError) as e:
        raise CheckpointError("%s: metadata: %s" % (path, e))
    return cfg


def load_model(path):
    """(model in eval mode, metadata) with every parameter from the file."""
    meta, tensors = read_safetensors(path)
    cfg = config_from_metadata(path, meta)
    model = MinFormer(cfg)
    state = model.state_dict()
    params = {k: v for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIXES)}
    missing = sorted(set(state) - set(params))
    unknown = sorted(set(params) - set(state))
    if missing or unknown:
        raise CheckpointError("%s: tensors missing %s, unknown %s" % (path, missing[:3], unknown[:3]))
    for name, t in state.items():
        if tuple(params[name].shape) != tuple(t.shape):
            raise CheckpointError("%s: tensor '%s' has shape %s, the model needs %s"
                                  % (path, name, list(params[name].shape), list(t.shape)))
    model.load_state_dict({k: torch.from_numpy(params[k].copy()) for k in state}, strict=True)
    model.eval()
    return model, meta


# ---- data ------------------------------------------------------------------------

def read_maybe_gzip(path):
    with open(path, "rb") as f:
        raw = f.read()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def idx_path(directory, name):
    """DIR/NAME, or DIR/NAME.gz when only that exists (as minformer looks)."""
    plain = os.path.join(directory, name)
    if os.path.exists(plain) or not os.path.exists(plain + ".gz"):
        return plain
    return plain + ".gz"


def read_idx(path, ndim):
    raw = read_maybe_gzip(path)
    if len(raw) < 4 + 4 * ndim or raw[:4] != bytes([0, 0, 8, ndim]):
        raise CheckpointError("%s: not an IDX file of unsigned bytes with %d dimensions" % (path, ndim))
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise CheckpointError("%s: %d data bytes, the header promises %d"
                              % (path, len(body), int(np.prod(dims))))
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def load_test_split(data_dir, dataset):
    """(images uint8 (n, C, S, S), labels int64 (n)) of the test split."""
    if dataset in ("mnist", "fashion-mnist"):
        sub = os.path.join(data_dir, dataset)
        images = read_idx(idx_path(sub, "t10k-images-idx3-ubyte"), 3)
        labels = read_idx(idx_path(sub, "t10k-labels-idx1-ubyte"), 1)
        if len(images) != len(labels):
            raise CheckpointError("%s: %d images but %d labels" % (sub, len(images), len(labels)))
        return images[:, None, :, :], labels.astype(np.int64)
    if dataset == "cifar10":
        path = os.path.join(data_dir, "cifar-10-batches-bin", "test_batch.bin")
        with open(path, "rb") as f:
            raw = f.read()
        if len(raw) % 3073:
            raise CheckpointError("%s: %d bytes, not whole records of 3073" % (path, len(raw)))
        records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
        return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)
    raise CheckpointError("unknown dataset '%s'" % dataset)


def normalize(images, mean, std):
    """(p/255 - mean[c]) / std[c] in float32, in the order minformer computes it."""
    x = images.astype(np.float32) / np.float32(255.0)
    mean = np.asarray(mean, dtype=np.float32)[None, :, None, None]
    std = np.asarray(std, dtype=np.float32)[None, :, None, None]
    return (x - mean) / std


# ---- evaluation --------------------------------------------------------------------

def evaluate(model, images, labels, mean, std, batch):
    """(correct, mean cross-entropy) over the split."""
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(labels), batch):
            x = torch.from_numpy(normalize(images[start:start + batch], mean, std))
            y = torch.from_numpy(labels[start:start + batch])
            logits = model(x)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(dim=1) == y).sum())
    return correct, loss_sum / max(len(labels), 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    ap.add_argument("--data", help="data directory (default $MINFORMER_DATA, else ./data)")
    ap.add_argument("--dataset", help="evaluate on this dataset instead of the checkpoint's")
    ap.add_argument("--limit-test", type=int, default=0, help="the first N test images only")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    ap.add_argument("--json", action="store_true", help="one JSON object per checkpoint")
    args = ap.parse_args()
    if args.limit_test < 0 or args.batch < 1:
        ap.error("--limit-test must be >= 0 and --batch >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    data_dir = args.data or os.environ.get("MINFORMER_DATA") or "./data"
    splits = {}
    try:
        for path in args.checkpoints:
            model, meta = load_model(path)
            dataset = args.dataset or meta.get("dataset", "")
            if dataset == "cifar-10":
                dataset = "cifar10"
            if dataset not in splits:
                splits[dataset] = load_test_split(data_dir, dataset)
            images, labels = splits[dataset]
            if args.limit_test:
                images, labels = images[:args.limit_test], labels[:args.limit_test]
            cfg = model.cfg
            if images.shape[1:] != (cfg["channels"], cfg["image_size"], cfg["image_size"]):
                raise CheckpointError("%s: the model takes %dx%dx%d images; %s has %s"
                                      % (path, cfg["channels"], cfg["image_size"], cfg["image_size"],
                                         dataset, "x".join(map(str, images.shape[1:]))))
            channels = cfg["channels"]
            mean = [float(v) for v in meta["mean"].split(",")]
            std = [float(v) for v in meta["std"].split(",")]
            if len(mean) != channels or len(std) != channels:
                raise CheckpointError("%s: mean/std do not have %d values" % (path, channels))
            correct, loss = evaluate(model, images, labels, mean, std, args.batch)
            n = len(labels)
            if args.json:
                print(json.dumps({"checkpoint": path, "dataset": dataset, "count": n,
                                  "correct": correct, "test_acc": correct / n if n else 0.0,
                                  "test_loss": loss}))
            else:
                print("%s on %s test (%d images): loss %.4f, accuracy %.2f%% (%d correct)"
                      % (path, dataset, n, loss, 100.0 * correct / max(n, 1), correct))
            sys.stdout.flush()
    except (CheckpointError, OSError) as e:
        print("torch_checkpoint: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
