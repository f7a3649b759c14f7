"""ONNX Runtime vs PyTorch on fixed, natural-looking images; fails loudly past tolerance.

The images are deterministic synthetic scenes (gradients, textures, clutter and shapes: not
noise), preprocessed by the runtime's own :class:`Preprocessor`; PyTorch and ONNX Runtime see the
same tensor. Top-k outputs are compared as *sets*: near-tied queries may legitimately swap order,
so each PyTorch detection is matched to the ONNX detection of the same label with the closest
box and score. Detections in the tied tail at the K boundary are not required to match.

What counts as agreement scales with the model: ONNX Runtime and PyTorch round differently in
every layer, and how far that moves the outputs grows with depth and with the weights (a 1e-4
absolute bound rejects good exports of deep D-FINE / DEIMv2 models). The model's own float32
error scale is measured by running PyTorch again on the same images with the input jittered by a
few float32 ulps: the outputs move by what rounding alone moves them. A graph passes when every
compared detection is matched with its label and its score and box differences are within
``max(--tolerance, NOISE_FACTOR x that scale)``. A perturbed weight moves outputs by orders of
magnitude more than rounding (measured: a 5% class head, 1.2e-2 to 1.3e-2, against a scale of
2e-7 to 5e-7 on the tiny D-FINE and the transformers-default DEIMv2, whose ONNX Runtime
differences are 4e-7 to 8e-7), so it still fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rtdetr_edge._optional import require
from rtdetr_edge.contract import OUTPUT_RAW, ModelContract
from rtdetr_edge.data.synth import render_scene
from rtdetr_edge.errors import VerificationError
from rtdetr_edge.matching import SetMatch, match_topk, merge
from rtdetr_edge.preprocess import Preprocessor

from .options import DEFAULT_TOLERANCE

_IMAGE_SIZES = ((640, 480), (1280, 720), (480, 640), (512, 512))
# Rounding noise is measured with the input jittered by this many float32 ulps (relative); the
# graph may differ by up to NOISE_FACTOR times what that jitter moves (ONNX Runtime rounds in every
# layer, the jitter only at the input: measured differences are 1-2x the jitter's, see above).
JITTER_ULPS = 4
NOISE_FACTOR = 16


def verification_images(count: int = 4, seed: int = 20240601) -> list[np.ndarray]:
    """``count`` deterministic BGR scenes of varied sizes and aspect ratios."""
    rng = np.random.default_rng(seed)
    return [render_scene(rng, *_IMAGE_SIZES[i % len(_IMAGE_SIZES)])[0] for i in range(count)]


def torch_reference(model: Any, pixels: np.ndarray, top_k: int) -> tuple[np.ndarray, ...]:
    """PyTorch outputs for ``pixels``: raw (logits, pred_boxes) and top-k (scores, labels, xyxy).

    The top-k follows transformers' ``post_process_object_detection`` (focal-loss branch).
    """
    torch = require("torch", "verifying against PyTorch")
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(pixels))
        logits, boxes = out.logits, out.pred_boxes
        num_classes = logits.shape[-1]
        scores, index = torch.topk(torch.sigmoid(logits).flatten(1), top_k, dim=1)
        labels = index % num_classes
        query = index // num_classes
        sel = boxes.gather(1, query.unsqueeze(-1).repeat(1, 1, 4))
        xyxy = torch.cat([sel[..., :2] - sel[..., 2:] / 2, sel[..., :2] + sel[..., 2:] / 2], dim=-1)
    return logits.numpy(), boxes.numpy(), scores.numpy(), labels.numpy(), xyxy.numpy()


def float32_noise(
    model: Any, pixels: np.ndarray, top_k: int, reference: tuple[np.ndarray, ...], raw: bool = False
) -> float:
    """How far float32 rounding alone moves the model's outputs: PyTorch on ``pixels`` jittered by
    :data:`JITTER_ULPS` ulps against ``reference`` (its outputs on ``pixels``); the top-k scores and
    boxes, or with ``raw`` the logits and boxes."""
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-1.0, 1.0, pixels.shape) * (JITTER_ULPS * float(np.finfo(np.float32).eps) / 2)
    jittered = (pixels * (1.0 + jitter)).astype(np.float32)
    logits, pred_boxes, scores, labels, boxes = torch_reference(model, jittered, top_k)
    if raw:
        return max(float(np.abs(logits - reference[0]).max()), float(np.abs(pred_boxes - reference[1]).max()))
    found = merge(
        [
            match_topk((reference[2][n], reference[3][n], reference[4][n]), (scores[n], labels[n], boxes[n]))
            for n in range(len(pixels))
        ]
    )
    return max(found.max_abs_score, found.max_abs_box)


def allowed_difference(tolerance: float, noise: float) -> float:
    """The largest score/box difference that still agrees: ``tolerance``, or more for a model whose
    own float32 rounding moves its outputs further (:data:`NOISE_FACTOR` x ``noise``)."""
    return max(tolerance, NOISE_FACTOR * noise)


def verdict(match: SetMatch, tolerance: float, noise: float) -> bool:
    """Pass: every compared detection matched with its label, scores and boxes within
    :func:`allowed_difference`."""
    bound = allowed_difference(tolerance, noise)
    return match.label_agreement == 1.0 and match.max_abs_score <= bound and match.max_abs_box <= bound


@dataclass
class VerificationReport:
    images: int
    batch_sizes: list[int]
    tolerance: float
    max_abs_score: float
    max_abs_box: float
    label_agreement: float
    compared: int
    passed: bool
    float32_noise: float = 0.0  # what rounding alone moves the outputs (see float32_noise)
    allowed: float = 0.0  # the bound applied: max(tolerance, NOISE_FACTOR x float32_noise)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{'PASS' if self.passed else 'FAIL'}: {self.images} images, batches {self.batch_sizes}: "
            f"max |d score| {self.max_abs_score:.2e}, max |d box| {self.max_abs_box:.2e} "
            f"(allowed {self.allowed:.2e}: the larger of --tolerance {self.tolerance:g} and {NOISE_FACTOR} x the "
            f"model's float32 rounding noise {self.float32_noise:.1e}), labels agree on {self.label_agreement:.1%} "
            f"of {self.compared}"
        )


def verification_runs(images: int = 4, batch_sizes: tuple[int, ...] = (1, 4)) -> int:
    """Model runs :func:`verify` makes: PyTorch twice (reference, jittered), ONNX Runtime per batch."""
    return 2 + sum(-(-images // bs) for bs in batch_sizes)


def verify(
    model: Any,
    onnx_bytes: bytes,
    contract: ModelContract,
    images: list[np.ndarray] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    batch_sizes: tuple[int, ...] = (1, 4),
    raise_on_fail: bool = True,
    progress: Callable[[int], object] | None = None,
) -> VerificationReport:
    """Compare the ONNX graph on ONNX Runtime with the PyTorch model.

    Args:
        model: the eval-mode PyTorch model the graph was exported from.
        onnx_bytes: serialised final graph (top-k or raw outputs per ``contract``).
        contract: the graph's contract (preprocessing, outputs, K).
        images: BGR images (default: :func:`verification_images`).
        tolerance: max abs difference allowed for scores and normalised boxes (and raw outputs),
            raised to :data:`NOISE_FACTOR` x the model's own float32 rounding noise where that is
            larger (:func:`float32_noise`).
        batch_sizes: ONNX Runtime runs the images in batches of each of these sizes.
        raise_on_fail: raise :class:`VerificationError` instead of returning a failed report.
        progress: called with 1 after each model run (:func:`verification_runs` of them).
    """
    done = progress or (lambda n: None)
    ort = require("onnxruntime", "verifying the ONNX graph")
    images = images if images is not None else verification_images()
    pixels, _ = Preprocessor(contract.preprocessing).batch(images)
    k = contract.top_k
    k = min(k, contract.num_queries * contract.num_classes)
    reference = torch_reference(model, pixels, k)
    done(1)
    logits, pred_boxes, t_scores, t_labels, t_boxes = reference
    noise = float32_noise(model, pixels, k, reference, raw=contract.output_kind == OUTPUT_RAW)
    done(1)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    matches: list[SetMatch] = []
    worst_raw = 0.0
    for bs in batch_sizes:
        for start in range(0, len(images), bs):
            chunk = pixels[start : start + bs]
            outs = session.run(None, {contract.input_name: chunk})
            done(1)
            if contract.output_kind == OUTPUT_RAW:
                sl = slice(start, start + len(chunk))
                worst_raw = max(
                    worst_raw, float(np.abs(outs[0] - logits[sl]).max()), float(np.abs(outs[1] - pred_boxes[sl]).max())
                )
                continue
            for i in range(len(chunk)):
                n = start + i
                matches.append(match_topk((t_scores[n], t_labels[n], t_boxes[n]), (outs[0][i], outs[1][i], outs[2][i])))
    if contract.output_kind == OUTPUT_RAW:
        total = SetMatch(len(images), len(images), worst_raw, worst_raw)
    else:
        total = merge(matches)
    passed = verdict(total, tolerance, noise)
    report = VerificationReport(
        len(images),
        list(batch_sizes),
        tolerance,
        total.max_abs_score,
        total.max_abs_box,
        total.label_agreement,
        total.compared,
        passed,
        noise,
        allowed_difference(tolerance, noise),
    )
    if raise_on_fail and not passed:
        raise VerificationError(
            f"ONNX Runtime disagrees with PyTorch: {report.summary()}; if the differences are acceptable for "
            "this model, pass a larger --tolerance (or --no-verify)"
        )
    return report
