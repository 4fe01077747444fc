#!/usr/bin/python3
"""Reference tensors for tests/unit/test_parity.c, computed by an independent
PyTorch implementation of the minformer model.

Run it with Debian's interpreter, which has PyTorch 1.13 (CPU):

    /usr/bin/python3 tools/torch_reference.py [OUTDIR]
    /usr/bin/python3 tools/torch_reference.py --autocast [OUTDIR]   # bf16 references (parity_bf16/)

OUTDIR defaults to tests/data/parity (relative to the repository root). For
every case below the script builds the model from its own nn.Module code
(written from the model spec, no nn.MultiheadAttention), fills it with random
parameters from a fixed per-case seed (non-zero biases, LayerNorm weights
perturbed away from 1), draws random images and labels, and records:
the configuration, every parameter, the images, the labels, the logits, the
loss, every parameter gradient, the losses of 3 AdamW steps on the same batch
and the parameters after those 3 steps. Everything is float32. Rerunning the
script rewrites byte-identical files (with the same PyTorch build).

File format (all integers uint32 little-endian, all data little-endian):

    magic    8 bytes  "MFPARITY"
    version  u32      1
    count    u32      number of records
    count records, each:
      name_len u32, name (name_len bytes, no NUL)
      dtype    u32    0 = float32, 1 = int32, 2 = uint8 (text)
      ndim     u32    0..4 (0 = one scalar element)
      dims     u32 x ndim
      data     prod(dims) elements of dtype

Record names:
    config.<field>   int32 scalars: image_size channels classes patch dim layers
                     heads mlp_ratio qk vo pool batch, with qk/vo/pool numbered
                     as the C enums (qk: 0 separate 1 shared 2 collapsed
                     3 symmetric 4 cholesky; vo: 0 separate 1 collapsed 2 none
                     3 shaped; pool: 0 cls 1 mean)
    config.preset    uint8 text, only in the preset cases: the preset applied
                     (after heads = 4) to the defaults of the geometry
    train.lr, train.weight_decay, train.beta1, train.beta2, train.eps
                     float32 scalars of the AdamW run
    input            float32 (B,C,S,S)
    labels           int32 (B)
    logits           float32 (B,classes), before any step
    loss             float32 scalar, mean cross-entropy before any step
    param.<name>     float32, every parameter in PyTorch order and shape
    grad.<name>      float32, its gradient at the initial parameters
    steps.loss       float32 (3): loss at the start of AdamW step 1, 2, 3
    step3.<name>     float32, every parameter after 3 AdamW steps

The AdamW run: torch.optim.AdamW(lr 1e-2, betas (0.9, 0.999), eps 1e-8,
foreach=False) with two parameter groups, weight decay 0.1 on the tensors
that decay in the C tensor table (weight matrices and qk_tril) and 0 on the
rest; each step is zero_grad, forward, backward, step on the same batch.

`--vo shaped` (He & Hofmann, "Simplifying Transformer Blocks", ICLR 2024:
shaped attention in the value-free block) mixes the inputs with
alpha I + beta softmax(S) - gamma U, U every entry 1/T; its three scalars
(blocks.L.attn.shaped.{alpha,beta,gamma}, shape (1)) are drawn around 1 here
so that the three terms neither vanish nor cancel.

    /usr/bin/python3 tools/torch_reference.py --check-shaped

checks the shaped mixing instead of writing files: its gradients against
finite differences in double (torch.autograd.gradcheck) for every query/key
variant, and that the documented initialization starts it as the identity.
"""
import math
import os
import struct
import sys
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F

QK = {"separate": 0, "shared": 1, "collapsed": 2, "symmetric": 3, "cholesky": 4}
VO = {"separate": 0, "collapsed": 1, "none": 2, "shaped": 3}
POOL = {"cls": 0, "mean": 1}

LR, WEIGHT_DECAY, BETAS, EPS, STEPS = 1e-2, 0.1, (0.9, 0.999), 1e-8, 3


# ---- the model -------------------------------------------------------------

def tril_to_matrix(tril, n):
    """Lower triangle stored row-major (for i, for j <= i) -> (n,n) matrix with
    zeros above the diagonal."""
    idx = torch.tril_indices(n, n)  # row-major: (0,0), (1,0), (1,1), (2,0), ...
    lower = torch.zeros(n, n, dtype=tril.dtype)
    return lower.index_put((idx[0], idx[1]), tril)


class ShapedGains(nn.Module):
    """alpha, beta, gamma of --vo shaped, each of shape (1); a submodule so that
    they follow the query/key tensors in named_parameters(), as in the C
    tensor table (attn.shaped.alpha, attn.shaped.beta, attn.shaped.gamma)."""
    def __init__(self):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1))
        self.beta = nn.Parameter(torch.ones(1))
        self.gamma = nn.Parameter(torch.ones(1))


class Attention(nn.Module):
    def __init__(self, n, heads, qk, vo):
        super().__init__()
        self.n, self.heads, self.qk_kind, self.vo_kind = n, heads, qk, vo
        if qk == "separate":
            self.q = nn.Linear(n, n)
            self.k = nn.Linear(n, n)
        elif qk == "shared":
            self.q = nn.Linear(n, n)
        elif qk == "collapsed":
            self.qk = nn.Linear(n, n)
        else:  # symmetric, cholesky
            self.qk_tril = nn.Parameter(torch.zeros(n * (n + 1) // 2))
        if vo == "separate":
            self.v = nn.Linear(n, n)
            self.proj = nn.Linear(n, n)
        elif vo == "collapsed":
            self.vo = nn.Linear(n, n)
        elif vo == "shaped":  # H = 1
            self.shaped = ShapedGains()

    def split(self, x):  # (B,T,N) -> (B,H,T,d)
        b, t, n = x.shape
        return x.view(b, t, self.heads, n // self.heads).transpose(1, 2)

    def forward(self, h):  # h = LN1(x): (B,T,N)
        b, t, n = h.shape
        d = n // self.heads
        if self.qk_kind == "separate":
            q, k = self.split(self.q(h)), self.split(self.k(h))
            s = q @ k.transpose(-1, -2) / math.sqrt(d)
        elif self.qk_kind == "shared":
            q = self.split(self.q(h))
            s = q @ q.transpose(-1, -2) / math.sqrt(d)
        elif self.qk_kind == "collapsed":
            s = (self.qk(h) @ h.transpose(-1, -2)).unsqueeze(1) / math.sqrt(n)
        else:
            lower = tril_to_matrix(self.qk_tril, n)
            if self.qk_kind == "symmetric":
                w = lower + lower.t() - torch.diag(torch.diagonal(lower))
            else:
                w = lower @ lower.t()
            s = (h @ w @ h.transpose(-1, -2)).unsqueeze(1) / math.sqrt(n)
        a = torch.softmax(s, dim=-1)  # (B,H,T,T)
        if self.vo_kind == "separate":
            mix = (a @ self.split(self.v(h))).transpose(1, 2).reshape(b, t, n)
            return self.proj(mix)
        if self.vo_kind == "collapsed":
            return self.vo(a[:, 0] @ h)
        if self.vo_kind == "shaped":
            # The mixing matrix written out: alpha I + beta A - gamma U, U = 1/T.
            eye = torch.eye(t, dtype=h.dtype)
            uniform = torch.full((t, t), 1.0 / t, dtype=h.dtype)
            g = self.shaped
            mixing = g.alpha * eye + g.beta * a[:, 0] - g.gamma * uniform
            return mixing @ h
        return (a @ h.unsqueeze(1)).mean(dim=1)  # (1/H) sum_h A_h h


class Mlp(nn.Module):
    def __init__(self, n, hidden):
        super().__init__()
        self.fc1 = nn.Linear(n, hidden)
        self.fc2 = nn.Linear(hidden, n)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        n, r = cfg["dim"], cfg["mlp_ratio"]
        self.norm1 = nn.LayerNorm(n, eps=1e-5)
        self.attn = Attention(n, cfg["heads"], cfg["qk"], cfg["vo"])
        self.has_mlp = r > 0
        if self.has_mlp:
            self.norm2 = nn.LayerNorm(n, eps=1e-5)
            self.mlp = Mlp(n, r * n)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        if self.has_mlp:
            x = x + self.mlp(self.norm2(x))
        return x


class MinFormer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        n, p, c = cfg["dim"], cfg["patch"], cfg["channels"]
        patches = (cfg["image_size"] // p) ** 2
        self.cls = cfg["pool"] == "cls"
        if self.cls:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, n))
        self.pos_embed = nn.Parameter(torch.zeros(1, patches + (1 if self.cls else 0), n))
        self.patch_embed = nn.Linear(c * p * p, n)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg["layers"])])
        self.norm = nn.LayerNorm(n, eps=1e-5)
        self.head = nn.Linear(n, cfg["classes"])

    def patchify(self, images):
        """(B,C,S,S) -> (B,T,C*P*P): patches row-major over the grid, each
        flattened channel-major (c, y, x)."""
        b, c, s, _ = images.shape
        p = self.cfg["patch"]
        g = s // p
        x = images.reshape(b, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, g * g, c * p * p)

    def forward(self, images):
        x = self.patch_embed(self.patchify(images))
        if self.cls:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        if self.cls:
            return self.head(self.norm(x[:, 0]))
        return self.head(self.norm(x).mean(dim=1))


def decays(name):
    """The C tensor table's decay flag: weight matrices and qk_tril."""
    if name.endswith("qk_tril"):
        return True
    if name.endswith(".weight") and "norm" not in name:
        return True
    return False


# ---- random parameters -------------------------------------------------------

def randomize(model, cfg, gen):
    """Parameters that exercise every path: non-zero biases, LayerNorm weights
    away from 1, embeddings of order 1, attention scores of order 1."""
    n = cfg["dim"]
    with torch.no_grad():
        for name, t in model.named_parameters():
            if name in ("cls_token", "pos_embed"):
                t.copy_(0.5 * torch.randn(t.shape, generator=gen))
            elif name.endswith("qk_tril"):
                if cfg["qk"] == "cholesky":
                    std = math.sqrt(2.0) / n ** 0.75
                else:
                    std = 1.0 / math.sqrt(n)
                t.copy_(std * torch.randn(t.shape, generator=gen))
            elif ".shaped." in name:  # alpha, beta, gamma of order 1, all different
                t.copy_(1.0 + 0.3 * torch.randn(t.shape, generator=gen))
            elif "norm" in name and name.endswith(".weight"):
                t.copy_(1.0 + 0.2 * torch.randn(t.shape, generator=gen))
            elif "norm" in name:
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
            elif t.dim() == 2:
                bound = math.sqrt(3.0 / t.shape[1])  # unit-variance outputs
                t.copy_(bound * (2 * torch.rand(t.shape, generator=gen) - 1))
            else:
                t.copy_(0.2 * torch.randn(t.shape, generator=gen))


# ---- the file format ---------------------------------------------------------

class Writer:
    def __init__(self):
        self.records = []

    def add(self, name, value, dtype=0):
        if dtype == 2:
            data = value.encode("ascii")
            dims = [len(data)]
        else:
            arr = value.detach().contiguous()
            if dtype == 0:
                arr = arr.to(torch.float32)
                data = struct.pack("<%df" % arr.numel(), *arr.reshape(-1).tolist())
            else:
                arr = arr.to(torch.int32)
                data = struct.pack("<%di" % arr.numel(), *arr.reshape(-1).tolist())
            dims = list(arr.shape)
        nb = name.encode("ascii")
        head = struct.pack("<I", len(nb)) + nb + struct.pack("<II", dtype, len(dims))
        head += struct.pack("<%dI" % len(dims), *dims)
        self.records.append(head + data)

    def add_int(self, name, v):
        self.add(name, torch.tensor(v, dtype=torch.int32), 1)

    def add_float(self, name, v):
        self.add(name, torch.tensor(v, dtype=torch.float32), 0)

    def save(self, path):
        blob = b"MFPARITY" + struct.pack("<II", 1, len(self.records)) + b"".join(self.records)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
        return len(blob)


# ---- one case ----------------------------------------------------------------

# With --autocast the forward passes run under torch.autocast("cpu", bfloat16):
# the reference for minformer's --precision bf16 (tests/data/parity_bf16/).
AUTOCAST = False


def forward(model, images):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=AUTOCAST):
        return model(images).float()


def run_case(name, cfg, batch, preset=None):
    seed = zlib.crc32(name.encode("ascii"))
    gen = torch.Generator().manual_seed(seed)
    model = MinFormer(cfg)
    randomize(model, cfg, gen)
    s, c = cfg["image_size"], cfg["channels"]
    images = torch.randn(batch, c, s, s, generator=gen)
    labels = torch.randint(0, cfg["classes"], (batch,), generator=gen)

    w = Writer()
    for key in ("image_size", "channels", "classes", "patch", "dim", "layers", "heads",
                "mlp_ratio"):
        w.add_int("config." + key, cfg[key])
    w.add_int("config.qk", QK[cfg["qk"]])
    w.add_int("config.vo", VO[cfg["vo"]])
    w.add_int("config.pool", POOL[cfg["pool"]])
    w.add_int("config.batch", batch)
    if preset:
        w.add("config.preset", preset, 2)
    w.add_float("train.lr", LR)
    w.add_float("train.weight_decay", WEIGHT_DECAY)
    w.add_float("train.beta1", BETAS[0])
    w.add_float("train.beta2", BETAS[1])
    w.add_float("train.eps", EPS)
    w.add("input", images)
    w.add("labels", labels, 1)

    params = list(model.named_parameters())
    for pname, t in params:
        w.add("param." + pname, t)

    logits = forward(model, images)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    w.add("logits", logits)
    w.add("loss", loss)
    for pname, t in params:
        w.add("grad." + pname, t.grad)

    opt = torch.optim.AdamW(
        [{"params": [t for n_, t in params if decays(n_)], "weight_decay": WEIGHT_DECAY},
         {"params": [t for n_, t in params if not decays(n_)], "weight_decay": 0.0}],
        lr=LR, betas=BETAS, eps=EPS, foreach=False)
    step_losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        step_loss = F.cross_entropy(forward(model, images), labels)
        step_loss.backward()
        opt.step()
        step_losses.append(step_loss.item())
    w.add("steps.loss", torch.tensor(step_losses))
    for pname, t in params:
        w.add("step3." + pname, t)
    return w


def config(s, c, p, n, layers, heads, r, qk, vo, pool="cls", classes=10):
    return dict(image_size=s, channels=c, classes=classes, patch=p, dim=n, layers=layers,
                heads=heads, mlp_ratio=r, qk=qk, vo=vo, pool=pool)


def preset_config(preset, s, c, p, n, layers):
    """The C defaults (mf_config_default: H 1, r 4), heads set to 4, then the
    preset as mf_config_apply_preset applies it."""
    cfg = config(s, c, p, n, layers, 4, 4, "separate", "separate")
    if preset == "unchanged":
        cfg.update(qk="separate", vo="separate", mlp_ratio=4)
    elif preset == "wqk":
        cfg.update(qk="collapsed", vo="separate", heads=1)
    elif preset == "minimal":
        cfg.update(qk="collapsed", vo="none", heads=1)
    elif preset == "symmetric":
        cfg.update(qk="shared", vo="separate")
    return cfg


def cases():
    """(name, cfg, batch, preset) for every reference file."""
    out = []
    # Every single-head combination at a small geometry: 8x8 images, 4x4 patches.
    for qk in QK:
        for vo in VO:
            for r in (0, 2):
                name = "grid_h1_%s_%s_r%d" % (qk, vo, r)
                out.append((name, config(8, 1, 4, 16, 2, 1, r, qk, vo), 4, None))
    # Four heads where valid, three channels.
    for qk in ("separate", "shared"):
        for vo in ("separate", "none"):
            for r in (0, 2):
                name = "grid_h4_%s_%s_r%d" % (qk, vo, r)
                out.append((name, config(8, 3, 4, 16, 2, 4, r, qk, vo), 4, None))
    # Mean pooling: no CLS token.
    out.append(("pool_mean_h4_separate_separate_r2",
                config(8, 3, 4, 16, 2, 4, 2, "separate", "separate", "mean"), 4, None))
    out.append(("pool_mean_h1_cholesky_none_r0",
                config(8, 1, 4, 16, 2, 1, 0, "cholesky", "none", "mean"), 4, None))
    out.append(("pool_mean_h1_shared_shaped_r2",
                config(8, 1, 4, 16, 2, 1, 2, "shared", "shaped", "mean"), 4, None))
    # The presets at MNIST geometry (28x28x1, patch 7), narrow so files stay small.
    for preset in ("unchanged", "wqk", "minimal", "symmetric"):
        out.append(("mnist_preset_" + preset, preset_config(preset, 28, 1, 7, 24, 2), 4, preset))
    # CIFAR-like geometry: 32x32x3, patch 8.
    out.append(("cifar_h1_symmetric_collapsed_r2",
                config(32, 3, 8, 16, 2, 1, 2, "symmetric", "collapsed"), 4, None))
    # CIFAR-10 geometry at patch 4 (T = 65, as the default CIFAR-10 models):
    # tiles of more than 32 tokens, where bf16 runs the attention products too.
    out.append(("cifar_p4_h1_separate_separate_r2",
                config(32, 3, 4, 32, 2, 1, 2, "separate", "separate"), 4, None))
    out.append(("cifar_p4_h1_collapsed_none_r0",
                config(32, 3, 4, 16, 2, 1, 0, "collapsed", "none"), 4, None))
    # Shaped attention at MNIST geometry (T = 17): the minimal model's block.
    out.append(("mnist_h1_collapsed_shaped_r0",
                config(28, 1, 7, 24, 2, 1, 0, "collapsed", "shaped"), 4, None))
    # Wider than the 64 columns the C side sums at a time (N = 72).
    out.append(("wide_h1_symmetric_shaped_r0",
                config(8, 1, 4, 72, 2, 1, 0, "symmetric", "shaped"), 4, None))
    return out


# ---- checking the shaped mixing ----------------------------------------------

def shaped_init(attn, qk):
    """The initialization of docs/model.md for --vo shaped, on top of PyTorch's
    default Linear init (uniform in +-1/sqrt(fan_in), as the C side draws).
    Where the scores are linear in the query weights (separate, collapsed,
    symmetric) those weights start at zero, so softmax(S) = U and, with
    alpha = beta = gamma = 1, the mixing matrix is I (He & Hofmann). Where S is
    quadratic in them (shared: W_k = W_q; cholesky: W = L L^T) zero weights
    would have zero gradient forever, so they keep their usual init and
    beta = gamma = 0 instead: the mixing matrix is again exactly I."""
    n = attn.n
    with torch.no_grad():
        if qk in ("symmetric", "cholesky"):
            std = math.sqrt(2.0) / n ** 0.75 if qk == "cholesky" else None
            if std is None:
                attn.qk_tril.uniform_(-1.0 / math.sqrt(n), 1.0 / math.sqrt(n))
            else:
                attn.qk_tril.normal_(0.0, std)
        for lin in ("q", "k", "qk"):
            if hasattr(attn, lin):
                getattr(attn, lin).bias.zero_()
        attn.shaped.alpha.fill_(1.0)
        attn.shaped.beta.fill_(1.0)
        attn.shaped.gamma.fill_(1.0)
        if qk == "separate":
            attn.q.weight.zero_()
        elif qk == "collapsed":
            attn.qk.weight.zero_()
        elif qk == "symmetric":
            attn.qk_tril.zero_()
        else:  # shared, cholesky
            attn.shaped.beta.zero_()
            attn.shaped.gamma.zero_()


def check_shaped():
    """Gradients of the shaped mixing by finite differences (double), the
    identity at initialization, and that every parameter moves within 3 Adam
    steps from that initialization. Returns the number of failures."""
    from torch.nn.utils.stateless import functional_call
    failures = 0
    gen = torch.Generator().manual_seed(12)
    b, t, n = 2, 5, 6
    for qk in QK:
        attn = Attention(n, 1, qk, "shaped").double()
        randomize(attn, dict(dim=n, qk=qk), gen)
        names = [k for k, _ in attn.named_parameters()]
        h = torch.randn(b, t, n, dtype=torch.float64, generator=gen, requires_grad=True)
        params = [p.detach().clone().requires_grad_(True) for _, p in attn.named_parameters()]

        def f(h_, *ps):
            return functional_call(attn, dict(zip(names, ps)), (h_,))
        ok = torch.autograd.gradcheck(f, (h, *params), eps=1e-6, atol=1e-8, rtol=1e-6,
                                      raise_exception=False)
        # The CLS-row case: only query row 0 is needed (the C side's Q = 1).
        ok0 = torch.autograd.gradcheck(lambda h_, *ps: f(h_, *ps)[:, :1], (h, *params), eps=1e-6,
                                       atol=1e-8, rtol=1e-6, raise_exception=False)
        shaped_init(attn, qk)
        with torch.no_grad():
            identity_err = (attn(h) - h).abs().max().item()
        start = {k: p.detach().clone() for k, p in attn.named_parameters()}
        opt = torch.optim.Adam(attn.parameters(), lr=1e-2)
        r = torch.randn(b, t, n, dtype=torch.float64, generator=gen)
        for _ in range(3):
            opt.zero_grad()
            loss = (r * attn(h.detach())).sum() + (attn(h.detach()) ** 2).sum()
            loss.backward()
            opt.step()
        stuck = [k for k, p in attn.named_parameters() if torch.equal(p.detach(), start[k])]
        good = ok and ok0 and identity_err <= 1e-12 and not stuck
        failures += not good
        print("%s shaped qk=%s: gradcheck %s, row-0 gradcheck %s, |out - h| at init %.2g, "
              "parameters that did not move in 3 Adam steps: %s"
              % ("ok" if good else "FAILED", qk, "passed" if ok else "failed",
                 "passed" if ok0 else "failed", identity_err, ", ".join(stuck) or "none"))
    # Why not zero query weights for the quadratic forms: their gradient is then 0.
    for qk in ("shared", "cholesky"):
        attn = Attention(n, 1, qk, "shaped").double()
        shaped_init(attn, qk)
        with torch.no_grad():
            attn.shaped.beta.fill_(1.0)
            attn.shaped.gamma.fill_(1.0)
            (attn.q.weight if qk == "shared" else attn.qk_tril).zero_()
        out = attn(h.detach())
        ((r * out).sum() + (out ** 2).sum()).backward()
        w = attn.q.weight if qk == "shared" else attn.qk_tril
        print("for comparison, qk=%s with zero query weights and beta = gamma = 1: max |dL/dW| %.2g"
              % (qk, w.grad.abs().max().item()))
    return failures


# The cases --autocast writes: the presets, four heads, two CIFAR geometries
# (T = 17 and 65), shaped mixing.
AUTOCAST_CASES = ("mnist_preset_unchanged", "mnist_preset_minimal", "mnist_preset_symmetric",
                  "grid_h4_separate_separate_r2", "cifar_h1_symmetric_collapsed_r2",
                  "cifar_p4_h1_separate_separate_r2", "cifar_p4_h1_collapsed_none_r0",
                  "mnist_h1_collapsed_shaped_r0")


def main():
    global AUTOCAST
    if sys.argv[1:] == ["--check-shaped"]:
        torch.set_num_threads(1)
        sys.exit(1 if check_shaped() else 0)
    args = sys.argv[1:]
    if args[:1] == ["--autocast"]:
        AUTOCAST = True
        args = args[1:]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    default = "parity_bf16" if AUTOCAST else "parity"
    outdir = args[0] if args else os.path.join(root, "tests", "data", default)
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)  # one summation order: deterministic output
    torch.use_deterministic_algorithms(True)
    names, total = [], 0
    for name, cfg, batch, preset in cases():
        if AUTOCAST and name not in AUTOCAST_CASES:
            continue
        w = run_case(name, cfg, batch, preset)
        total += w.save(os.path.join(outdir, name + ".bin"))
        names.append(name)
    index = os.path.join(outdir, "index.txt")
    with open(index + ".tmp", "w") as f:
        f.write("".join(n + "\n" for n in names))
    os.replace(index + ".tmp", index)
    print("wrote %d cases, %d bytes, to %s" % (len(names), total, outdir))


if __name__ == "__main__":
    main()
