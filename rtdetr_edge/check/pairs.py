""":class:`ImagePairs`: what a check saw on each image, kept for the HTML report's side-by-side images.

A check holds every image's reference and candidate detections (every top-k entry; a few KB per
image), the image names and sizes, and where the images came from, never the decoded images:
:meth:`ImagePairs.images` reads back only the few that are drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..contract import ModelContract
from ..detections import Detections
from .data import CheckDataLoader, ImageSource


@dataclass(frozen=True)
class ImagePairs:
    """Per checked image (in the order fed): its name, size (w, h) and both sides' detections.

    Attributes:
        source: the images of the check (:func:`~rtdetr_edge.check.data.resolve_images`).
        contract: the bundle's model contract (how the images were read).
        names: image names, as the data loader yielded them.
        sizes: (width, height) of each image.
        reference, candidate: every top-k detection of each image, no threshold.
        conf: the check's confidence threshold (what a user sees).
    """

    source: ImageSource
    contract: ModelContract
    names: list[str]
    sizes: list[tuple[int, int]]
    reference: list[Detections]
    candidate: list[Detections]
    conf: float

    def __len__(self) -> int:
        return len(self.names)

    def images(self, indices: Iterable[int]) -> dict[int, np.ndarray]:
        """BGR images at ``indices``, read again in one pass over the source (only those are kept).

        An image that no longer reads, or reads as another name, is left out.
        """
        wanted = set(indices)
        out: dict[int, np.ndarray] = {}
        if not wanted:
            return out
        for k, (name, image) in enumerate(CheckDataLoader(self.source, self.contract).images()):
            if k in wanted and k < len(self.names) and name == self.names[k]:
                out[k] = image
            if k >= max(wanted):
                break
        return out
