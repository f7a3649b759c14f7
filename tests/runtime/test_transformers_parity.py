"""Parity with transformers: same model, same image.

* identical preprocessed input: our Detector (ONNX Runtime, in-graph top-k) vs the PyTorch model +
  ``post_process_object_detection``: same labels, boxes within 0.5 px, scores within 1e-4;
* end to end (our preprocessing vs transformers' image processor): top-10 boxes within 2 px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REFERENCE_MODEL

torch = pytest.importorskip("torch")


def _hf_processor(model_dir: Path):
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil

    return RTDetrImageProcessorPil.from_pretrained(model_dir)


def _hf_detect(model_dir: Path, pixel_values, sizes, threshold: float):
    from transformers import RTDetrForObjectDetection

    model = RTDetrForObjectDetection.from_pretrained(model_dir).eval()
    with torch.no_grad():
        out = model(pixel_values=pixel_values)
    processor = _hf_processor(model_dir)
    return processor.post_process_object_detection(out, threshold=threshold, target_sizes=[(h, w) for w, h in sizes])


def _match(ours, theirs, box_tol: float, score_tol: float) -> None:
    assert len(ours) == len(theirs["scores"])
    t_scores = theirs["scores"].numpy()
    t_labels = theirs["labels"].numpy()
    t_boxes = theirs["boxes"].numpy()
    for xyxy, score, label in zip(ours.xyxy, ours.scores, ours.class_ids):
        cand = np.flatnonzero(t_labels == label)
        d = np.abs(t_boxes[cand] - xyxy).max(1)
        j = cand[int(np.argmin(d))]
        assert d.min() <= box_tol, (xyxy, t_boxes[j])
        assert abs(t_scores[j] - score) <= score_tol


@pytest.mark.parametrize("which", ["tiny", "reference"])
def test_identical_input_parity(
    which: str, tiny_model_dir: Path, tiny_bundle: Path, request: pytest.FixtureRequest
) -> None:
    from rtdetr_edge import Detector
    from rtdetr_edge.data.synth import render_scene

    if which == "reference":
        if not (REFERENCE_MODEL / "config.json").is_file():
            pytest.skip("models/rtdetr-shapes is not present")
        model_dir, bundle = REFERENCE_MODEL, request.getfixturevalue("reference_bundle")
    else:
        model_dir, bundle = tiny_model_dir, tiny_bundle
    det = Detector(bundle, conf=0.3)
    images = [render_scene(np.random.default_rng(s), 640, 480)[0] for s in range(3)]
    # identical input: the tensor our preprocessing makes goes to both
    pixels, sizes = det.preprocessor.batch(images)
    threshold = 0.3 if which == "reference" else 0.7
    theirs = _hf_detect(model_dir, torch.from_numpy(pixels), sizes, threshold)
    outputs = det.backend.run({"images": pixels})
    from rtdetr_edge.postprocess import PostprocessOptions, from_topk

    ours = from_topk(
        outputs["scores"],
        outputs["labels"],
        outputs["boxes"],
        sizes,
        PostprocessOptions(conf=threshold),
        det.class_names,
    )
    for o, t in zip(ours, theirs):
        _match(o, t, box_tol=0.5, score_tol=1e-4)


def test_end_to_end_top10_with_own_preprocessing(reference_bundle: Path) -> None:
    from rtdetr_edge import Detector
    from rtdetr_edge.data.synth import render_scene

    processor = _hf_processor(REFERENCE_MODEL)
    # transformers' post-processing keeps every label of a query and the model's own boxes
    det = Detector(reference_bundle, conf=0.0, max_det=10, all_labels=True, clip=False)
    # Scenes of the size the model was trained on (320x240 -> 256). At 1280x720 (5x down) OpenCV's
    # INTER_AREA and Pillow's antialiased bilinear differ by ~0.5 grey levels on average, and this
    # small model's detections of objects that shrink to a few pixels flip between the two (the
    # closing note of issue 3 has the numbers); that measures the model, not the preprocessing.
    for seed in range(3):
        img = render_scene(np.random.default_rng(100 + seed), 320, 240)[0]
        ours = det(img)
        enc = processor(images=img[..., ::-1].copy(), return_tensors="pt")
        theirs = _hf_detect(REFERENCE_MODEL, enc["pixel_values"], [(320, 240)], 0.0)[0]
        order = np.argsort(-theirs["scores"].numpy())[:10]
        top = {k: v[order] for k, v in theirs.items()}
        # near-tied queries may swap order: each of our top-10 must have a same-label match
        for xyxy, label, score in zip(ours.xyxy, ours.class_ids, ours.scores):
            cand = np.flatnonzero(top["labels"].numpy() == label)
            if score < 0.3 and cand.size == 0:
                continue  # a weak detection beyond transformers' top-10; ranks 9-10 may differ
            assert cand.size, (label, score)
            assert np.abs(top["boxes"].numpy()[cand] - xyxy).max(1).min() <= 2.0
