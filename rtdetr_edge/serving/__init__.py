"""Serving on NVIDIA Triton Inference Server: model repositories, the server launcher, a client.

* :mod:`.repository` (``rtdetr-triton``): a bundle -> a Triton model repository: the ensemble
  ``rtdetr`` (encoded image bytes in; ``boxes``, ``scores``, ``class_ids`` out) over a
  Python-backend preprocessing model, the detector (TensorRT plan, ONNX Runtime or a
  Python-backend model running :class:`~rtdetr_edge.Detector`) and a Python-backend
  postprocessing model.
* :mod:`.server` (``rtdetr-serve``): runs a real ``tritonserver`` (the system's, or the one in the
  ``nvidia-pytriton`` wheel inside its own environment, :mod:`.environment`) in the foreground.
* :mod:`.client`: :class:`TritonDetector` sends images to a server and returns
  :class:`~rtdetr_edge.Detections` (needs ``tritonclient``: ``pip install "rtdetr-edge[serve]"``).
* :mod:`.steps`: the numpy work of the Python-backend models (decode, preprocess, detector step,
  postprocess), with no Triton import, so it is tested like any other code.

See docs/serving.md.
"""

from __future__ import annotations
