#!/usr/bin/env python3
"""Train the shipped reference model ``models/rtdetr-shapes`` on generated data, on a CPU.

Host side (torch + transformers). The recipe (see ``models/rtdetr-shapes/README.md`` for the
numbers it gave):

* data: ``rtdetr-data synth`` scenes, 320x240, 6 classes; train seed 1, validation seed 2 (used
  to pick the best checkpoint), held-out seed 3 (never seen; the reported AP);
* model: ``RTDetrForObjectDetection`` with a ResNet-18-style "basic" backbone one block per stage
  (32-64-128-256 channels), hybrid encoder at 96 channels (expansion 0.5), 3-layer decoder at
  d_model 128, 100 queries, 256x256 input, denoising on; 3.0 M parameters (~1.0 s per step of
  8 images on 2 cores; expansion 1.0 at 128 channels, 5.1 M parameters, took 1.8 s);
* init: Kaiming convolutions and neutral BatchNorm (the default init makes activations vanish),
  backbone BatchNorm trained (``freeze_backbone_batch_norms=False``);
* optimisation: AdamW lr 2e-4 (backbone 1e-4), weight decay 1e-4, 100 warm-up steps, constant,
  then a cosine decay over the last 30% of steps; gradient-norm clip 0.1; batch 8; horizontal
  flips; an EMA of the weights is what gets evaluated and saved;
* preprocessing: the runtime's own :class:`rtdetr_edge.preprocess.Preprocessor`, so training,
  calibration and deployment see identical tensors.

Resumable: ``--work-dir`` keeps ``checkpoint.pt`` (weights-only loading) and ``log.jsonl``;
rerunning the same command continues where it stopped.

    python models/train_reference.py --work-dir build/train --steps 6000 --out models/rtdetr-shapes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig
from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil

from rtdetr_edge import atomic
from rtdetr_edge.contract import Preprocessing
from rtdetr_edge.data import synth
from rtdetr_edge.data.coco import CocoDataset
from rtdetr_edge.evaluate.coco_map import ImagePrediction, coco_map, format_metrics
from rtdetr_edge.images import read_image
from rtdetr_edge.postprocess import PostprocessOptions, from_raw
from rtdetr_edge.preprocess import Preprocessor

INPUT_SIZE = 256


def shapes_config() -> RTDetrConfig:
    # out_features / num_labels are accepted at runtime (transformers' config __init__ takes the
    # PretrainedConfig kwargs), but the dataclass signature its types expose does not list them
    backbone = RTDetrResNetConfig(  # type: ignore[call-arg]  # out_features: see above
        depths=[1, 1, 1, 1],
        hidden_sizes=[32, 64, 128, 256],
        embedding_size=32,
        layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    )
    id2label = dict(enumerate(synth.CLASSES))
    return RTDetrConfig(  # type: ignore[call-arg]  # num_labels: see above
        backbone_config=backbone,
        encoder_in_channels=[64, 128, 256],
        encoder_hidden_dim=96,
        hidden_expansion=0.5,
        encoder_ffn_dim=512,
        d_model=128,
        decoder_in_channels=[96, 96, 96],
        decoder_ffn_dim=512,
        decoder_layers=3,
        num_queries=100,
        num_labels=len(synth.CLASSES),
        anchor_image_size=[INPUT_SIZE, INPUT_SIZE],
        num_denoising=100,
        freeze_backbone_batch_norms=False,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )


def reinit_(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)


class Data:
    """Decoded images kept in memory (320x240 BGR ~ 0.9 GB for 4000) and their targets."""

    def __init__(self, ann: Path, pre: Preprocessor) -> None:
        self.ds = CocoDataset(ann)
        self.pre = pre
        self.images = [read_image(im.path) for im in self.ds.images]
        self.targets = [self.ds.targets(im.id) for im in self.ds.images]

    def batch(self, idx: np.ndarray, rng: np.random.Generator | None) -> tuple[torch.Tensor, list[dict]]:
        buf = self.pre.allocate(len(idx))
        labels = []
        for j, i in enumerate(idx):
            img = self.images[i]
            boxes, cats = self.targets[i]
            h, w = img.shape[:2]
            boxes = boxes.copy()
            if rng is not None and rng.random() < 0.5:
                img = img[:, ::-1]
                boxes[:, 0] = w - boxes[:, 0] - boxes[:, 2]
            self.pre.into(img, buf[j])
            cxcywh = (
                np.stack(
                    [
                        (boxes[:, 0] + boxes[:, 2] / 2) / w,
                        (boxes[:, 1] + boxes[:, 3] / 2) / h,
                        boxes[:, 2] / w,
                        boxes[:, 3] / h,
                    ],
                    axis=1,
                )
                if len(boxes)
                else np.zeros((0, 4))
            )
            labels.append(
                {
                    "class_labels": torch.as_tensor(cats - 1, dtype=torch.long),
                    "boxes": torch.as_tensor(cxcywh, dtype=torch.float32),
                }
            )
        return torch.from_numpy(buf), labels


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Data, batch: int = 16) -> dict[str, float]:
    model.eval()
    preds = []
    opts = PostprocessOptions(conf=0.0, max_det=100)
    names = tuple(synth.CLASSES)
    for s in range(0, len(data.images), batch):
        idx = np.arange(s, min(s + batch, len(data.images)))
        pixels, _ = data.batch(idx, None)
        out = model(pixel_values=pixels)
        sizes = [(data.images[i].shape[1], data.images[i].shape[0]) for i in idx]
        dets = from_raw(out.logits.numpy(), out.pred_boxes.numpy(), sizes, 100, opts, names)
        preds += [ImagePrediction(data.ds.images[i].id, d.xyxy, d.scores, d.class_ids) for i, d in zip(idx, dets)]
    return coco_map(data.ds, preds, names)


def lr_factor(step: int, total: int, warmup: int = 100, decay_from: float = 0.7) -> float:
    if step < warmup:
        return (step + 1) / warmup
    start = int(total * decay_from)
    if step < start:
        return 1.0
    t = (step - start) / max(total - start, 1)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))


def ensure_data(root: Path, name: str, num: int, seed: int) -> Path:
    ann = root / name / "annotations.json"
    if not ann.is_file():
        print(f"generating {num} images ({name}, seed {seed}) ...", flush=True)
        synth.generate(root / name, num, seed)
    return ann


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=Path("build/train"))
    ap.add_argument("--data-root", type=Path, default=None, help="default: WORK_DIR/data")
    ap.add_argument("--out", type=Path, default=Path("models/rtdetr-shapes"))
    ap.add_argument("--num-train", type=int, default=4000)
    ap.add_argument("--num-val", type=int, default=300)
    ap.add_argument("--num-test", type=int, default=500)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    root = args.data_root or work / "data"
    pre = Preprocessor(Preprocessing(height=INPUT_SIZE, width=INPUT_SIZE))
    train = Data(ensure_data(root, "train", args.num_train, 1), pre)
    val = Data(ensure_data(root, "val", args.num_val, 2), pre)

    config = shapes_config()
    model = RTDetrForObjectDetection(config)
    reinit_(model)
    ema = RTDetrForObjectDetection(config)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    backbone = [p for n, p in model.named_parameters() if "backbone" in n]
    rest = [p for n, p in model.named_parameters() if "backbone" not in n]
    opt = torch.optim.AdamW(
        [{"params": backbone, "lr": args.lr / 2}, {"params": rest, "lr": args.lr}], lr=args.lr, weight_decay=1e-4
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    ckpt_path = work / "checkpoint.pt"
    step, best, elapsed = 0, -1.0, 0.0
    rng = np.random.default_rng(args.seed)
    if ckpt_path.is_file():
        ck = torch.load(ckpt_path, weights_only=True)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, best, elapsed = int(ck["step"]), float(ck["best"]), float(ck["elapsed"])
        rng = np.random.default_rng([args.seed, step])
        print(f"resumed at step {step} (best val AP {best:.3f}, {elapsed / 60:.1f} min so far)", flush=True)
    with open(work / "log.jsonl", "a") as log:
        print(
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; {len(train.images)} train images",
            flush=True,
        )
        t0 = time.time() - elapsed
        order = rng.permutation(len(train.images))
        pos = 0
        model.train()
        while step < args.steps:
            if pos + args.batch > len(order):
                order, pos = rng.permutation(len(train.images)), 0
            idx = order[pos : pos + args.batch]
            pos += args.batch
            pixels, labels = train.batch(idx, rng)
            f = lr_factor(step, args.steps)
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * f
            out = model(pixel_values=pixels, labels=labels)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            opt.step()
            decay = min(0.999, (1 + step) / (10 + step))
            with torch.no_grad():
                for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
                    if e.dtype.is_floating_point:
                        e.mul_(decay).add_(p.detach(), alpha=1 - decay)
                    else:
                        e.copy_(p)
            step += 1
            if step % 50 == 0:
                rec = {
                    "step": step,
                    "loss": round(out.loss.item(), 4),
                    "lr": opt.param_groups[1]["lr"],
                    "min": round((time.time() - t0) / 60, 2),
                }
                print(json.dumps(rec), flush=True)
                log.write(json.dumps(rec) + "\n")
                log.flush()
            if step % args.eval_every == 0 or step == args.steps:
                metrics = evaluate(ema, val)
                model.train()
                rec = {"step": step, "val": metrics, "min": round((time.time() - t0) / 60, 2)}
                print(f"step {step}: val {format_metrics(metrics)}", flush=True)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if metrics["AP"] > best:
                    best = metrics["AP"]
                    ema.save_pretrained(work / "best")
                state = {
                    "model": model.state_dict(),
                    "ema": ema.state_dict(),
                    "opt": opt.state_dict(),
                    "step": step,
                    "best": best,
                    "elapsed": time.time() - t0,
                }
                with atomic.replacing_file(ckpt_path) as tmp:
                    torch.save(state, tmp)

    # ship the best EMA weights with the processor config the runtime reads the contract from
    best_model = RTDetrForObjectDetection.from_pretrained(work / "best")
    test = Data(ensure_data(root, "test", args.num_test, 3), pre)
    test_metrics = evaluate(best_model, test)
    print(f"held-out test (seed 3, {len(test.images)} images): {format_metrics(test_metrics)}", flush=True)
    with atomic.replacing_dir(args.out, overwrite=True) as tmp:
        best_model.save_pretrained(tmp)
        RTDetrImageProcessorPil(size={"height": INPUT_SIZE, "width": INPUT_SIZE}).save_pretrained(tmp)
        atomic.write_json(
            tmp / "training.json",
            {
                "steps": step,
                "batch": args.batch,
                "lr": args.lr,
                "num_train": args.num_train,
                "train_seed": 1,
                "val_seed": 2,
                "test_seed": 3,
                "best_val_AP": best,
                "test": test_metrics,
                "minutes": round((time.time() - t0) / 60, 1),
                "threads": args.threads,
                "torch": torch.__version__,
                "cpu_count": os.cpu_count(),
            },
        )
    print(f"saved {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
