"""embgeom-train in plain PyTorch: the same encoder (layer for layer, the same parameter
names), projection head, classifier, losses (simclr, supcon, ce, align-uniform,
supcon-spread), augmentations, optimisers (AdamW, SGD with Nesterov momentum), cosine
schedule, data and checkpoint format (safetensors + manifest.json, which `embgeom track`
reads).

    python benches/trainer_reference.py train --data digits --out runs/ref --loss supcon
    python benches/trainer_reference.py parity DUMP_DIR          # used by the parity test
    python benches/trainer_reference.py bench --batch-size 512 --steps 20 --device cuda

Needs PyTorch only (and NumPy); no Rust, no network.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FEATURES = 64
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]


# ----------------------------------------------------------------------------- model

class ConvBN(nn.Module):
    """Conv 3x3 (no bias) + batch norm, as the trainer's `conv_bn`."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class Residual(nn.Module):
    """`relu(x + bn(conv(relu(bn(conv(x))))))`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.a = ConvBN(channels, channels, 1)
        self.b = ConvBN(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(F.relu(self.a(x))))


class Encoder(nn.Module):
    """The encoder and projection head, named as in the trainer's var store."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.stem = ConvBN(1, 32, 1)
        self.block1 = Residual(32)
        self.down = ConvBN(32, FEATURES, 2)
        self.block2 = Residual(FEATURES)
        self.proj1 = nn.Linear(FEATURES, 128)
        self.proj2 = nn.Linear(128, dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = self.block1(x)
        x = F.relu(self.down(x))
        x = self.block2(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.proj2(F.relu(self.proj1(x)))


class Model(Encoder):
    """The encoder with the classifier of the cross-entropy loss."""

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__(dim)
        self.classifier = nn.Linear(dim, classes)


SIGLIP_INITIAL = (math.log(10.0), -10.0)
MAX_LOGIT_SCALE = 100.0


class TwoTower(nn.Module):
    """The towers of the top and the bottom halves, with the logit scale (and SigLIP's bias)."""

    def __init__(self, dim: int, loss: str, temperature: float) -> None:
        super().__init__()
        self.top = Encoder(dim)
        self.bottom = Encoder(dim)
        scale = SIGLIP_INITIAL[0] if loss == "siglip" else math.log(1.0 / temperature)
        self.logit_scale = nn.Parameter(torch.tensor(scale))
        self.logit_bias = nn.Parameter(torch.tensor(SIGLIP_INITIAL[1])) if loss == "siglip" else None

    def embed(self, x: torch.Tensor):
        h = x.shape[2]
        return self.top.embed(x[:, :, : h // 2]), self.bottom.embed(x[:, :, h // 2:])

    def loss(self, za, zb):
        za, zb = za.float(), zb.float()
        if self.logit_bias is None:
            return clip_loss(za, zb, self.logit_scale)
        return siglip_loss(za, zb, self.logit_scale, self.logit_bias)

    def clamp(self) -> None:
        with torch.no_grad():
            self.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))


# ----------------------------------------------------------------------------- losses

def normalize(z: torch.Tensor) -> torch.Tensor:
    return z / z.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12)


def _logits(z1, z2, tau):
    z = normalize(torch.cat([z1, z2], 0))
    return z @ z.t() / tau


def _log_prob_without_self(logits):
    n = logits.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    masked = logits.masked_fill(eye, float("-inf"))
    log_prob = masked - masked.logsumexp(1, keepdim=True)
    return log_prob.masked_fill(eye, 0.0), eye


def nt_xent(z1, z2, tau):
    b = z1.shape[0]
    log_prob, _ = _log_prob_without_self(_logits(z1, z2, tau))
    positive = (torch.arange(2 * b, device=z1.device) + b) % (2 * b)
    return -log_prob.gather(1, positive.unsqueeze(1)).mean()


def _mean_over_positives(log_prob, positives):
    positives = positives.float()
    count = positives.sum(1)
    per_anchor = -(log_prob * positives).sum(1) / count.clamp_min(1.0)
    has = (count > 0).float()
    return (per_anchor * has).sum() / has.sum().clamp_min(1.0)


def supcon(z1, z2, labels, tau):
    log_prob, eye = _log_prob_without_self(_logits(z1, z2, tau))
    y = torch.cat([labels, labels], 0)
    same = (y.unsqueeze(1) == y.unsqueeze(0)) & ~eye
    return _mean_over_positives(log_prob, same)


def class_conditional_nce(z1, z2, labels, tau):
    b = z1.shape[0]
    y = torch.cat([labels, labels], 0)
    other = y.unsqueeze(1) != y.unsqueeze(0)
    restricted = _logits(z1, z2, tau).masked_fill(other, float("-inf"))
    log_prob, _ = _log_prob_without_self(restricted)
    positive = (torch.arange(2 * b, device=z1.device) + b) % (2 * b)
    return -log_prob.gather(1, positive.unsqueeze(1)).mean()


def alignment(z1, z2):
    return (normalize(z1) - normalize(z2)).pow(2).sum(1).mean()


def uniformity(z, t):
    x = normalize(z)
    n = x.shape[0]
    sq = (x @ x.t() * -2.0 + 2.0).clamp_min(0.0)
    upper = torch.ones(n, n, dtype=torch.bool, device=z.device).triu(1)
    return (sq * -t).masked_select(upper).logsumexp(0) - math.log(n * (n - 1) / 2)


def clip_loss(za, zb, logit_scale):
    """open_clip's ClipLoss: the mean of the two directions' cross-entropies."""
    logits = logit_scale.exp() * normalize(za) @ normalize(zb).t()
    target = torch.arange(za.shape[0], device=za.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def siglip_loss(za, zb, logit_scale, logit_bias):
    """open_clip's SigLipLoss: -sum log sigmoid(y_ij L_ij) / B, y = 2I - 1."""
    logits = logit_scale.exp() * normalize(za) @ normalize(zb).t() + logit_bias
    signs = 2 * torch.eye(za.shape[0], device=za.device) - 1
    return -F.logsigmoid(signs * logits).sum() / za.shape[0]


def batch_loss(args, model, z1, z2, labels):
    z1, z2 = z1.float(), z2.float()
    tau = args.temperature
    if args.loss == "simclr":
        return nt_xent(z1, z2, tau)
    if args.loss == "supcon":
        return supcon(z1, z2, labels, tau)
    if args.loss == "ce":
        logits = torch.cat([model.classifier(z1), model.classifier(z2)], 0)
        return F.cross_entropy(logits, torch.cat([labels, labels], 0))
    if args.loss == "align-uniform":
        return alignment(z1, z2) + (uniformity(z1, 2.0) + uniformity(z2, 2.0)) * (
            args.uniformity_weight / 2.0)
    if args.loss == "supcon-spread":
        w = args.spread_weight
        return supcon(z1, z2, labels, tau) * (1 - w) + class_conditional_nce(z1, z2, labels, tau) * w
    raise ValueError(f"unknown loss {args.loss}")


# ----------------------------------------------------------------------------- augmentation

def augment(images, shift_x, shift_y, flip, noise):
    """The trainer's view: integer shifts (pixels) and flips (+1/-1) as an affine grid,
    nearest sampling with zero fill, plus `noise` (a tensor, or None)."""
    b, _, h, w = images.shape
    tx = shift_x.float() * (2.0 / w)
    ty = shift_y.float() * (2.0 / h)
    zeros, ones = torch.zeros(b, device=images.device), torch.ones(b, device=images.device)
    theta = torch.stack([flip.float(), zeros, tx, zeros, ones, ty], 1).view(b, 2, 3)
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    moved = F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return moved if noise is None else moved + noise


def random_view(images, pad, flip, noise_std, generator=None):
    b, _, h, w = images.shape
    device = images.device
    sx = torch.randint(2 * pad + 1, (b,), device=device, generator=generator) - pad
    sy = torch.randint(2 * pad + 1, (b,), device=device, generator=generator) - pad
    fl = (torch.randint(2, (b,), device=device, generator=generator) * 2 - 1) if flip else torch.ones(b, device=device)
    noise = torch.randn(b, 1, h, w, device=device, generator=generator) * noise_std if noise_std > 0 else None
    return augment(images, sx, sy, fl, noise)


# ----------------------------------------------------------------------------- optimisers

NOT_DECAYED = ("logit_scale", "logit_bias")


def optimiser(args, model):
    """AdamW or Nesterov SGD; the two towers' logit scale and bias without weight decay."""
    decayed = [p for n, p in model.named_parameters() if n not in NOT_DECAYED]
    exempt = [p for n, p in model.named_parameters() if n in NOT_DECAYED]
    groups = [{"params": decayed}] + ([{"params": exempt, "weight_decay": 0.0}] if exempt else [])
    if args.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                                 weight_decay=args.weight_decay)
    return torch.optim.SGD(groups, lr=args.lr, momentum=0.9, dampening=0.0,
                           weight_decay=args.weight_decay, nesterov=True)


def cosine_lr(lr, step, total):
    return lr * 0.5 * (1.0 + math.cos(math.pi * step / total))


# ----------------------------------------------------------------------------- safetensors

_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64", torch.float64: "F64"}
_TORCH = {v: k for k, v in _DTYPES.items()}


def write_safetensors(tensors: Dict[str, torch.Tensor], path: str) -> None:
    """The safetensors format: an 8-byte header length, a JSON header, the raw bytes."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().cpu().contiguous().numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)))
        handle.write(text)
        for blob in blobs:
            handle.write(blob)
    os.replace(tmp, path)


def read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    with open(path, "rb") as handle:
        data = handle.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    body = data[8 + size:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = _TORCH[info["dtype"]]
        array = np.frombuffer(body[start:end], dtype=torch.empty(0, dtype=dtype).numpy().dtype)
        out[name] = torch.from_numpy(array.copy()).reshape(info["shape"])
    return out


# ----------------------------------------------------------------------------- data

def load_digits(csv: str):
    rows = np.loadtxt(csv, delimiter=",", skiprows=1)
    x = torch.tensor(rows[:, :64] / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(rows[:, 64], dtype=torch.int64)
    index = torch.arange(len(y))
    evaluation, train = index[index % 5 == 0], index[index % 5 != 0]
    return (x[train], y[train]), (x[evaluation], y[evaluation]), 10, None


def _idx(path):
    with open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion(folder: str, eval_size: int = 2000):
    x = torch.tensor(_idx(os.path.join(folder, "train-images-idx3-ubyte")), dtype=torch.float32) / 255.0
    y = torch.tensor(_idx(os.path.join(folder, "train-labels-idx1-ubyte")).astype(np.int64))
    tx = torch.tensor(_idx(os.path.join(folder, "t10k-images-idx3-ubyte")), dtype=torch.float32) / 255.0
    ty = torch.tensor(_idx(os.path.join(folder, "t10k-labels-idx1-ubyte")).astype(np.int64))
    per = max(1, eval_size // 10)
    picked = torch.cat([torch.nonzero(ty == c).flatten()[:per] for c in range(10)]).sort().values
    return (x.unsqueeze(1), y), (tx[picked].unsqueeze(1), ty[picked]), 10, FASHION_NAMES


def load_data(args):
    if args.data == "digits":
        return load_digits(args.digits_csv)
    if args.data == "fashion":
        return load_fashion(args.fashion_dir)
    images = torch.tensor(np.load(args.images), dtype=torch.float32)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    labels = torch.tensor(np.load(args.labels).astype(np.int64))
    index = torch.arange(len(labels))
    evaluation, train = index[index % 5 == 0], index[index % 5 != 0]
    classes = int(labels.max()) + 1
    return (images[train], labels[train]), (images[evaluation], labels[evaluation]), classes, None


# ----------------------------------------------------------------------------- commands

def train(args) -> None:
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    (x, y), (ex, ey), classes, names = load_data(args)
    model = Model(args.dim, classes).to(device)
    opt = optimiser(args, model)
    os.makedirs(args.out, exist_ok=True)
    manifest = {"checkpoints": [], "config": vars(args)}
    if names:
        manifest["class_names"] = names
    generator = torch.Generator(device=device).manual_seed(1_000_003)
    views = [random_view(ex.to(device), args.pad, args.flip, args.noise, generator) for _ in range(2)]
    batches = len(y) // args.batch_size
    total = args.epochs * batches
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(y))[: batches * args.batch_size]
        losses = []
        model.train()
        for b in range(batches):
            for group in opt.param_groups:
                group["lr"] = cosine_lr(args.lr, (epoch - 1) * batches + b, total)
            index = order[b * args.batch_size:(b + 1) * args.batch_size]
            images, labels = x[index].to(device), y[index].to(device)
            x1 = random_view(images, args.pad, args.flip, args.noise)
            x2 = random_view(images, args.pad, args.flip, args.noise)
            with torch.autocast(device.type, dtype=torch.float16, enabled=args.amp and device.type == "cuda"):
                z = model.embed(torch.cat([x1, x2], 0))
                loss = batch_loss(args, model, z[: len(index)], z[len(index):], labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            model.eval()
            with torch.no_grad():
                tensors = {
                    "embeddings": model.embed(ex.to(device)).float(),
                    "views": torch.stack([model.embed(v).float() for v in views], 1),
                    "labels": ey,
                }
            name = f"ckpt_epoch_{epoch:04d}.safetensors"
            write_safetensors(tensors, os.path.join(args.out, name))
            manifest["checkpoints"].append({
                "step": epoch * batches, "epoch": epoch, "loss": float(np.mean(losses)),
                "wall_seconds": time.perf_counter() - started, "path": name})
            with open(os.path.join(args.out, "manifest.json"), "w") as handle:
                json.dump(manifest, handle, indent=2)
        print(f"epoch {epoch}: loss {np.mean(losses):.4f}", file=sys.stderr)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def parity(args) -> int:
    """Compare with a dump of embgeom-train (tests/parity.rs): the same initial weights, the
    same augmentation draws and batches; the views, the loss, every gradient (1e-5 relative)
    and the weights after five optimiser steps (1e-4)."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # as the dump: a fixed summation order
    dump = args.dump
    config = json.load(open(os.path.join(dump, "config.json")))
    ns = argparse.Namespace(**config)
    initial = read_safetensors(os.path.join(dump, "initial.safetensors"))
    two_tower = ns.loss in ("clip", "siglip")
    model = TwoTower(ns.dim, ns.loss, ns.temperature) if two_tower else Model(ns.dim, ns.classes)
    state = model.state_dict()
    missing = [k for k in state if not k.endswith("num_batches_tracked") and k not in initial]
    if missing:
        print(f"parity: names missing from the dump: {missing}", file=sys.stderr)
        return 2
    model.load_state_dict({k: initial.get(k, v) for k, v in state.items()})
    model.train()
    opt = optimiser(ns, model)
    worst: Dict[str, float] = {}
    failures: List[str] = []

    def check(what: str, got: torch.Tensor, want: torch.Tensor, tolerance: float) -> None:
        error = relative(got, want)
        worst[what] = max(worst.get(what, 0.0), error)
        if not error <= tolerance:
            failures.append(f"{what}: relative error {error:.3e} > {tolerance:.0e} "
                            f"(norm {float(want.double().norm()):.3e})")

    for step in range(ns.steps):
        batch = read_safetensors(os.path.join(dump, f"batch_{step}.safetensors"))
        x1 = augment(batch["images"], batch["shift_x1"], batch["shift_y1"], batch["flip1"], batch["noise1"])
        check("views", x1, batch["view1"], 1e-6)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(ns.lr, step, ns.steps)
        if two_tower:
            loss = model.loss(*model.embed(batch["view1"]))
        else:
            x2 = augment(batch["images"], batch["shift_x2"], batch["shift_y2"], batch["flip2"],
                         batch["noise2"])
            check("views", x2, batch["view2"], 1e-6)
            z = model.embed(torch.cat([batch["view1"], batch["view2"]], 0))
            b = len(batch["labels"])
            loss = batch_loss(ns, model, z[:b], z[b:], batch["labels"])
        check(f"loss at step {step}", loss.detach(), batch["loss"].reshape(()), 1e-5)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            grads = read_safetensors(os.path.join(dump, "gradients.safetensors"))
            for name, p in model.named_parameters():
                if (p.grad is None) != (name not in grads):
                    failures.append(f"gradient of {name}: present on one side only")
                elif p.grad is not None:
                    check(f"gradient of {name}", p.grad, grads[name], 1e-5)
        opt.step()
        if two_tower:
            model.clamp()
    final = read_safetensors(os.path.join(dump, "final.safetensors"))
    for name, p in model.named_parameters():
        check(f"weights of {name} after the steps", p.detach(), final[name], 1e-4)
    report = {"loss": ns.loss, "optimizer": ns.optimizer, "worst_relative_error": worst,
              "failures": failures}
    print(json.dumps(report))
    return 1 if failures else 0


def bench(args) -> None:
    """Images per second of training steps (two views each) on `--device`, after warm-up."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = Model(args.dim, 10).to(device).train()
    opt = optimiser(args, model)
    images = torch.rand(args.batch_size, 1, args.size, args.size, device=device)
    labels = torch.randint(10, (args.batch_size,), device=device)
    use_amp = args.amp and device.type == "cuda"

    def step():
        x1 = random_view(images, args.pad, args.flip, args.noise)
        x2 = random_view(images, args.pad, args.flip, args.noise)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            z = model.embed(torch.cat([x1, x2], 0))
            loss = batch_loss(args, model, z[: args.batch_size], z[args.batch_size:], labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(json.dumps({"implementation": "pytorch", "device": name, "batch_size": args.batch_size,
                      "precision": "f16 autocast" if use_amp else "f32",
                      "images_per_second": args.steps * args.batch_size / seconds}))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--loss", default="supcon",
                        choices=["simclr", "supcon", "ce", "align-uniform", "supcon-spread"])
    common.add_argument("--lr", type=float, default=1e-3)
    common.add_argument("--weight-decay", type=float, default=1e-4)
    common.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    common.add_argument("--temperature", type=float, default=0.1)
    common.add_argument("--dim", type=int, default=128)
    common.add_argument("--batch-size", type=int, default=256)
    common.add_argument("--pad", type=int, default=2)
    common.add_argument("--no-flip", dest="flip", action="store_false")
    common.add_argument("--noise", type=float, default=0.05)
    common.add_argument("--uniformity-weight", type=float, default=1.0)
    common.add_argument("--spread-weight", type=float, default=0.5)
    common.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    common.add_argument("--amp", action="store_true",
                        help="CUDA autocast in f16, libtorch's default and embgeom-train's --amp")
    t = sub.add_parser("train", parents=[common])
    t.add_argument("--data", default="digits", choices=["digits", "fashion", "npy"])
    t.add_argument("--digits-csv", default="data/digits.csv")
    t.add_argument("--fashion-dir", default="data/fashion-mnist")
    t.add_argument("--images")
    t.add_argument("--labels")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--eval-every", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    p = sub.add_parser("parity")
    p.add_argument("dump")
    b = sub.add_parser("bench", parents=[common])
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--size", type=int, default=28)
    args = parser.parse_args(argv)
    if args.command == "train":
        train(args)
        return 0
    if args.command == "parity":
        return parity(args)
    bench(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
