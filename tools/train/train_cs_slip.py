#!/usr/bin/python3
"""Trains a CS-SLIP image encoder on a folder of images, their captions and their mined pairs.

    train_cs_slip.py --images DIR --pairs pairs.jsonl --embeddings captions.emb --out RUN
                     --steps N [--model vitb16] [--batch-size 64] [--resume] ...

Inputs (tools/train/README.md has the whole path): DIR is the folder indexed into retrace (an
item's id is its path under DIR); pairs.jsonl and the caption embeddings come from
`retrace mine-pairs --images DIR --out pairs.jsonl --embeddings-out captions.emb`: each image's
conceptual-similar partner (the item whose caption is nearest) and the frozen CLIP text
embedding of its caption, as the server stored them.

Each step takes a batch of images and computes, through one ViT (cs_slip.py):
  clip  InfoNCE of the image (RandomResizedCrop 0.5-1) against its caption embedding;
  ssl   SimCLR's NT-Xent between two SimCLR views (crop 0.08-1, colour jitter, grayscale, blur,
        flip), through the projection MLP;
  cs    the same NT-Xent between the first view and a SimCLR view of the partner image,
and minimises clip_weight*clip + ssl_weight*ssl + cs_weight*cs (a weight of 0 skips that
branch: --cs-weight 0 is SLIP, --clip-weight 0 --cs-weight 0 is SimCLR). AdamW (no decay on
biases, norms, embeddings and the temperature), linear warm-up then cosine decay.

Reproducible: batches and augmentations are functions of (--seed, step), so a run stopped at any
checkpoint and continued with --resume takes the same steps as an uninterrupted one (on the same
device). RUN/ gets checkpoint.pt (SLIP's layout: export it with tools/export/export_slip.py) and
log.jsonl (one line per step: every loss, the learning rate, the temperature, the time).
CUDA is used when present (--device), with bf16 autocast (--precision).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cs_slip  # noqa: E402
import mined_data  # noqa: E402

IMAGENET_MEAN = [0.485, 0.456, 0.406]  # SLIP's normalisation; export_slip.py's manifest
IMAGENET_STD = [0.229, 0.224, 0.225]
CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
CHECKPOINT_VERSION = 1
# What must not change when a run is resumed (the model, the data order, the schedule).
RESUME_FIXED = ("model", "image_size", "patch", "width", "depth", "heads", "mlp_ratio",
                "embed_dim", "ssl_mlp_dim", "ssl_emb_dim", "steps", "batch_size", "lr", "min_lr",
                "warmup_steps", "weight_decay", "clip_weight", "ssl_weight", "cs_weight", "seed",
                "min_crop", "items")


class TrainError(Exception):
    """A problem the user must fix; the message names the option, file or item."""


# --- data ---------------------------------------------------------------------------------


def simclr_transform(size, min_crop):
    """SLIP's SimCLR augmentation (SimCLR's, with a blur of sigma 0.1-2); crops keep at least
    `min_crop` of the area (SimCLR: 0.08)."""
    kernel = max(3, int(0.1 * size) // 2 * 2 + 1)  # SimCLR: 10% of the side, odd
    return transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(min_crop, 1.0)),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.RandomApply([transforms.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def clip_transform(size):
    """SLIP's image-text branch: a milder crop."""
    return transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.5, 1.0)),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


class MinedSet:
    """The training items: images under a folder with caption embeddings and partners."""

    def __init__(self, images_dir, pairs_path, embeddings_path):
        if not os.path.isdir(images_dir):
            raise TrainError("--images: %s is not a folder" % images_dir)
        try:
            pairs = mined_data.read_pairs(pairs_path)
            ids, matrix = mined_data.read_caption_embeddings(embeddings_path)
        except mined_data.MinedDataError as e:
            raise TrainError(str(e))
        row = {item_id: i for i, item_id in enumerate(ids)}
        usable = [p for p in pairs if "error" not in p]
        if len(usable) < 2:
            raise TrainError("%s: %d usable items (lines without 'error'); training needs at "
                             "least 2" % (pairs_path, len(usable)))
        missing_rows = [p["id"] for p in usable if p["id"] not in row]
        if missing_rows:
            raise TrainError("%s holds no embedding for %d items of %s, e.g. '%s' (files of "
                             "different runs?)" % (embeddings_path, len(missing_rows), pairs_path,
                                                   missing_rows[0]))
        missing_files = [p["id"] for p in usable
                         if not os.path.isfile(os.path.join(images_dir, p["id"]))]
        if missing_files:
            raise TrainError("--images: %d items of %s have no file under %s, e.g. '%s' (the "
                             "folder that was indexed?)" % (len(missing_files), pairs_path,
                                                            images_dir, missing_files[0]))
        self.ids = [p["id"] for p in usable]
        index = {item_id: i for i, item_id in enumerate(self.ids)}
        self.paths = [os.path.join(images_dir, item_id) for item_id in self.ids]
        self.text = torch.from_numpy(np.stack([matrix[row[i]] for i in self.ids]))
        # A partner outside the set (e.g. an error line) leaves the item without one.
        self.partner = [index.get(p.get("nearest"), -1) if p.get("nearest") is not None else -1
                        for p in usable]

    def __len__(self):
        return len(self.ids)


class StepData(torch.utils.data.Dataset):
    """Item i's views for one (step, slot): the augmentations are drawn from a generator
    seeded by (seed, step, slot), the same in any worker and after a resume."""

    def __init__(self, data, size, min_crop, with_partner):
        self.data = data
        self.clip_tf = clip_transform(size)
        self.ssl_tf = simclr_transform(size, min_crop)
        self.size = size
        self.with_partner = with_partner

    def __len__(self):
        return len(self.data)

    def _image(self, i):
        try:
            with Image.open(self.data.paths[i]) as img:
                return img.convert("RGB")
        except OSError as e:
            raise TrainError("%s: cannot be read as an image: %s" % (self.data.paths[i], e))

    def __getitem__(self, key):
        i, aug_seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(aug_seed)
            image = self._image(i)
            clip_view = self.clip_tf(image)
            view1, view2 = self.ssl_tf(image), self.ssl_tf(image)
            partner = self.data.partner[i] if self.with_partner else -1
            if partner >= 0:
                partner_view = self.ssl_tf(self._image(partner))
            else:
                partner_view = torch.zeros_like(view1)
        return clip_view, view1, view2, partner_view, self.data.text[i], partner >= 0


class StepBatches(torch.utils.data.Sampler):
    """Batches for steps start..steps-1: epoch e visits the items in a permutation seeded by
    (seed, e), batch_size at a time (the rest of an epoch is dropped, so no batch repeats an
    item); slot j of step s augments with seed (seed, s, j)."""

    def __init__(self, n, batch_size, seed, start, steps):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.steps = start, steps
        self.per_epoch = n // batch_size

    def __len__(self):
        return self.steps - self.start

    def __iter__(self):
        epoch, order = -1, None
        for step in range(self.start, self.steps):
            if step // self.per_epoch != epoch:
                epoch = step // self.per_epoch
                order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            k = step % self.per_epoch
            seeds = np.random.SeedSequence([self.seed, step]).generate_state(self.batch_size)
            yield [(int(order[k * self.batch_size + j]), int(seeds[j]))
                   for j in range(self.batch_size)]


# --- optimisation ------------------------------------------------------------------------


def learning_rate(step, cfg):
    """Linear warm-up to lr over warmup_steps, then cosine decay to min_lr at the last step."""
    if step < cfg["warmup_steps"]:
        return cfg["lr"] * (step + 1) / cfg["warmup_steps"]
    span = max(1, cfg["steps"] - cfg["warmup_steps"])
    progress = min(1.0, (step - cfg["warmup_steps"]) / span)
    return cfg["min_lr"] + 0.5 * (cfg["lr"] - cfg["min_lr"]) * (1 + math.cos(math.pi * progress))


def make_optimizer(model, cfg):
    """AdamW as SLIP: no weight decay on biases, norms, embeddings and the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "pos_embed" in name or "cls_token" in name or name == "logit_scale":
            no_decay.append(p)
        else:
            decay.append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=cfg["lr"], betas=(0.9, 0.98), eps=1e-8)


def train_step(model, batch, cfg, device, autocast):
    """Losses of one batch: {'loss', 'clip', 'ssl', 'cs'} (a skipped branch is None)."""
    clip_view, view1, view2, partner_view, text, has_partner = batch
    use_clip, use_ssl = cfg["clip_weight"] > 0, cfg["ssl_weight"] > 0
    use_cs = cfg["cs_weight"] > 0 and int(has_partner.sum()) >= 2  # NT-Xent needs a negative
    views = []
    if use_clip:
        views.append(clip_view)
    if use_ssl or use_cs:
        views.append(view1)
    if use_ssl:
        views.append(view2)
    if use_cs:
        views.append(partner_view[has_partner])
    with autocast():
        features = model.features(torch.cat(views).to(device, non_blocking=True)).float()
    parts = list(torch.split(features, [v.shape[0] for v in views]))
    losses = {"clip": None, "ssl": None, "cs": None}
    total = 0.0
    if use_clip:
        image_embed = model.embed(parts.pop(0))
        losses["clip"] = cs_slip.clip_loss(image_embed, text.to(device), model.logit_scale)
        total = total + cfg["clip_weight"] * losses["clip"]
    if use_ssl or use_cs:
        h1 = model.ssl_head(parts.pop(0))  # the head in fp32: BatchNorm statistics
    if use_ssl:
        losses["ssl"] = cs_slip.nt_xent(h1, model.ssl_head(parts.pop(0)))
        total = total + cfg["ssl_weight"] * losses["ssl"]
    if use_cs:
        partner = model.ssl_head(parts.pop(0))
        losses["cs"] = cs_slip.nt_xent(h1[has_partner.to(device)], partner)
        total = total + cfg["cs_weight"] * losses["cs"]
    if not torch.is_tensor(total):  # only the CS branch is on, and this batch has no pairs
        raise TrainError("a batch without two partners, and every other branch is off: the CS "
                         "branch alone needs items with partners (mine-pairs' 'nearest')")
    losses["loss"] = total
    return losses


# --- checkpoints --------------------------------------------------------------------------


def slip_model_name(cfg):
    return cs_slip.SLIP_MODEL_NAMES.get(cfg["model"], "CSSLIP_" + cfg["model"].upper())


def save_checkpoint(out, model, optimizer, step, cfg):
    """RUN/checkpoint.pt, replaced atomically. `args` carries the SLIP model name and the heads,
    which export_slip.py reads; `config` the whole run."""
    args = argparse.Namespace(model=slip_model_name(cfg), heads=cfg["heads"],
                              ssl_mlp_dim=cfg["ssl_mlp_dim"], ssl_emb_dim=cfg["ssl_emb_dim"])
    state = {"version": CHECKPOINT_VERSION, "step": step, "config": cfg, "args": args,
             "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict()}
    path = os.path.join(out, CHECKPOINT)
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def load_checkpoint(out):
    path = os.path.join(out, CHECKPOINT)
    if not os.path.isfile(path):
        raise TrainError("--resume: %s not found (nothing to resume in --out %s)" % (path, out))
    try:
        ckpt = torch.load(path, map_location="cpu")
    except Exception as e:  # a truncated or foreign file
        raise TrainError("--resume: cannot read %s: %s" % (path, e))
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        raise TrainError("--resume: %s was not written by this trainer" % path)
    return ckpt


# --- the run ------------------------------------------------------------------------------


def config_from_args(a, data):
    sizes = cs_slip.model_sizes(a.model, dict(image_size=a.image_size, patch=a.patch,
                                              width=a.width, depth=a.depth, heads=a.heads))
    embed_dim = int(data.text.shape[1])
    if a.embed_dim is not None and a.embed_dim != embed_dim:
        raise TrainError("--embed-dim %d differs from the caption embeddings' dim %d: the image "
                         "embedding is trained against them" % (a.embed_dim, embed_dim))
    if a.batch_size > len(data):
        raise TrainError("--batch-size %d is more than the %d items" % (a.batch_size, len(data)))
    warmup = a.warmup_steps if a.warmup_steps is not None else a.steps // 20
    if warmup > a.steps:
        raise TrainError("--warmup-steps %d is more than --steps %d" % (warmup, a.steps))
    for name in ("clip_weight", "ssl_weight", "cs_weight"):
        if getattr(a, name) < 0:
            raise TrainError("--%s must be >= 0" % name.replace("_", "-"))
    if a.clip_weight == a.ssl_weight == a.cs_weight == 0:
        raise TrainError("--clip-weight, --ssl-weight and --cs-weight are all 0: nothing to train")
    cfg = dict(model=a.model, embed_dim=embed_dim, ssl_mlp_dim=a.ssl_mlp_dim,
               ssl_emb_dim=a.ssl_emb_dim, steps=a.steps, batch_size=a.batch_size, lr=a.lr,
               min_lr=a.min_lr, warmup_steps=warmup, weight_decay=a.weight_decay,
               clip_weight=a.clip_weight, ssl_weight=a.ssl_weight, cs_weight=a.cs_weight,
               seed=a.seed, min_crop=a.min_crop, items=len(data), images=os.path.abspath(a.images),
               pairs=os.path.abspath(a.pairs), embeddings=os.path.abspath(a.embeddings))
    cfg.update(sizes)
    return cfg


def pick_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is available")
    return torch.device(name)


def autocast_for(device, precision):
    """A context factory: bf16 autocast on CUDA ('auto' or 'bf16'), else none."""
    if precision == "bf16" and device.type != "cuda":
        raise TrainError("--precision bf16 needs --device cuda")
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return lambda: torch.autocast(device_type="cpu", enabled=False)


def run(a):
    if a.steps < 0:
        raise TrainError("--steps must be >= 0")
    data = MinedSet(a.images, a.pairs, a.embeddings)
    cfg = config_from_args(a, data)
    os.makedirs(a.out, exist_ok=True)
    start = 0
    ckpt = None
    if a.resume:
        ckpt = load_checkpoint(a.out)
        for key in RESUME_FIXED:
            if ckpt["config"].get(key) != cfg.get(key):
                raise TrainError("--resume: %s was %r in the run being resumed, now %r; resume "
                                 "with the same settings and data" % (key, ckpt["config"].get(key),
                                                                     cfg.get(key)))
        start = ckpt["step"]
    elif os.path.exists(os.path.join(a.out, CHECKPOINT)):
        raise TrainError("--out %s already holds a run (%s): pass --resume to continue it, or "
                         "choose another --out" % (a.out, CHECKPOINT))

    torch.manual_seed(cfg["seed"])  # the initial weights
    if a.threads:
        torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    autocast = autocast_for(device, a.precision)
    model = cs_slip.CsSlip(embed_dim=cfg["embed_dim"], ssl_mlp_dim=cfg["ssl_mlp_dim"],
                           ssl_emb_dim=cfg["ssl_emb_dim"],
                           **{k: cfg[k] for k in cs_slip.MODEL_SIZES["tiny"]})
    model.to(device)
    optimizer = make_optimizer(model, cfg)
    if ckpt is not None:
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
    log_mode = "a" if a.resume else "w"
    if a.resume:  # drop log lines of steps after the checkpoint (they are taken again)
        keep = []
        if os.path.isfile(os.path.join(a.out, LOG)):
            with open(os.path.join(a.out, LOG)) as f:
                keep = [line for line in f if line.strip() and json.loads(line)["step"] <= start]
        with open(os.path.join(a.out, LOG), "w") as f:
            f.writelines(keep)
    parameters = sum(p.numel() for p in model.parameters())
    print("train_cs_slip: %d items (%d with a partner), ViT %s (image %d, patch %d, width %d, "
          "depth %d, heads %d), D %d, %.1fM parameters, %s; steps %d..%d of batch %d"
          % (len(data), sum(p >= 0 for p in data.partner), cfg["model"], cfg["image_size"],
             cfg["patch"], cfg["width"], cfg["depth"], cfg["heads"], cfg["embed_dim"],
             parameters / 1e6, device, start, cfg["steps"], cfg["batch_size"]), flush=True)

    if start == 0 and cfg["steps"] == 0:
        save_checkpoint(a.out, model, optimizer, 0, cfg)  # the untrained baseline
        print("train_cs_slip: --steps 0: saved the initial weights in %s"
              % os.path.join(a.out, CHECKPOINT))
        return 0
    loader = torch.utils.data.DataLoader(
        StepData(data, cfg["image_size"], cfg["min_crop"], with_partner=cfg["cs_weight"] > 0),
        batch_sampler=StepBatches(len(data), cfg["batch_size"], cfg["seed"], start, cfg["steps"]),
        num_workers=a.workers, pin_memory=device.type == "cuda",
        persistent_workers=False)
    model.train()
    began = time.monotonic()
    step = start
    with open(os.path.join(a.out, LOG), log_mode) as log:
        for batch in loader:
            lr = learning_rate(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            losses = train_step(model, batch, cfg, device, autocast)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(cs_slip.MAX_LOGIT_SCALE))
            step += 1
            seconds = time.monotonic() - began
            record = {"step": step, "lr": lr, "seconds": round(seconds, 3),
                      "logit_scale": float(model.logit_scale.exp())}
            record.update({k: (None if v is None else float(v)) for k, v in losses.items()})
            log.write(json.dumps(record) + "\n")
            log.flush()
            if a.log_every and (step % a.log_every == 0 or step == cfg["steps"]):
                print("step %d/%d  loss %.4f  clip %s  ssl %s  cs %s  lr %.2e  %.1f s"
                      % (step, cfg["steps"], record["loss"],
                         *("-" if record[k] is None else "%.4f" % record[k]
                           for k in ("clip", "ssl", "cs")), lr, seconds), flush=True)
            timed_out = a.max_minutes is not None and seconds >= 60 * a.max_minutes
            if step == cfg["steps"] or step % a.save_every == 0 or timed_out:
                save_checkpoint(a.out, model, optimizer, step, cfg)
            if timed_out and step < cfg["steps"]:
                print("train_cs_slip: stopped after %.1f minutes at step %d of %d (--max-minutes);"
                      " --resume continues" % (seconds / 60, step, cfg["steps"]))
                return 0
    print("train_cs_slip: done, %d steps; %s" % (step, os.path.join(a.out, CHECKPOINT)))
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="the image folder that was indexed")
    p.add_argument("--pairs", required=True, help="mine-pairs' --out file (JSON Lines)")
    p.add_argument("--embeddings", required=True, help="mine-pairs' --embeddings-out file")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt and log.jsonl")
    p.add_argument("--steps", type=int, required=True,
                   help="optimiser steps (0: save the untrained weights, a baseline)")
    p.add_argument("--model", default="vitb16", choices=sorted(cs_slip.MODEL_SIZES),
                   help="ViT sizes (default vitb16, SLIP's ViT-B/16; tiny and small for tests "
                        "and CPU runs)")
    for name in ("image-size", "patch", "width", "depth", "heads"):
        p.add_argument("--" + name, type=int, default=None,
                       help="override the --model's %s" % name.replace("-", " "))
    p.add_argument("--embed-dim", type=int, default=None,
                   help="the image embedding's size; must equal the caption embeddings' (default)")
    p.add_argument("--ssl-mlp-dim", type=int, default=4096, help="SimCLR head width (SLIP: 4096)")
    p.add_argument("--ssl-emb-dim", type=int, default=256, help="SimCLR head output (SLIP: 256)")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4)")
    p.add_argument("--min-lr", type=float, default=1e-6, help="learning rate at the end")
    p.add_argument("--warmup-steps", type=int, default=None, help="default: 5%% of --steps")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW's (SLIP: 0.1)")
    p.add_argument("--clip-weight", type=float, default=1.0, help="image-caption branch")
    p.add_argument("--ssl-weight", type=float, default=1.0, help="SimCLR branch (SLIP: 1.0)")
    p.add_argument("--cs-weight", type=float, default=1.0, help="conceptual-similar branch")
    p.add_argument("--min-crop", type=float, default=0.08,
                   help="SimCLR views keep at least this fraction of the area (SimCLR: 0.08; "
                        "small images may want more)")
    p.add_argument("--seed", type=int, default=0, help="weights, batches and augmentations")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--save-every", type=int, default=500, help="checkpoint every N steps")
    p.add_argument("--log-every", type=int, default=10, help="print every N steps (0: never)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (with a checkpoint) after this long; --resume continues")
    p.add_argument("--workers", type=int, default=0, help="data loader processes (default 0)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                   help="auto: bf16 autocast on CUDA, fp32 on CPU")
    a = p.parse_args(argv)
    for name in ("batch_size", "save_every"):
        if getattr(a, name) < 1:
            p.error("--%s must be >= 1" % name.replace("_", "-"))
    if not 0 < a.min_crop <= 1:
        p.error("--min-crop must be in (0, 1]")
    if a.batch_size < 2:
        p.error("--batch-size must be >= 2 (contrastive losses need negatives)")
    return a


def main(argv=None):
    a = parse_args(argv)
    try:
        return run(a)
    except (TrainError, ValueError) as e:
        sys.stderr.write("error: %s\n" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
