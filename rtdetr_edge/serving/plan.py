"""The TensorRT plan of a Triton repository, from the engine recipe: which engine becomes ``model.plan``
and the trtexec command that builds one on each TensorRT line.

Both read :func:`rtdetr_edge.engine_recipe.recipe`, the decision every engine follows: an engine in
``BUNDLE/engines`` is taken only if its cache key is the one the recipe gives today for the bundle's
tensor-input graphs on the TensorRT version and GPU its sidecar names, and the README's trtexec
commands are :func:`rtdetr_edge.engine.trtexec.trtexec_command` of the recipe for each line.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..bundle import Bundle
from ..engine.trtexec import LineCommand, line_commands
from ..engine_format import BatchProfile, EngineMetadata
from ..engine_recipe import EngineBuildOptions, bundle_graphs, recipe_engines

log = logging.getLogger("rtdetr_edge")

# (label, a version of that line for the recipe, where it runs): each line's rules are one recipe row set
TENSORRT_LINES: tuple[tuple[str, str, str], ...] = (
    ("TensorRT 10.x", "10.3.0", "JetPack 6.1/6.2 (10.3), JetPack 7.2 (10.16), `tensorrt:24.05`-`25.xx` containers"),
    ("TensorRT 11.x", "11.4.1", "JetPack >= 7.2.2 on AGX Orin, TensorRT 11 containers"),
    ("TensorRT 8.6", "8.6.2", "JetPack 6.0, `tensorrt:23.xx` containers"),
)


def build_commands(
    bundle: Bundle, precision: str, profile: BatchProfile, build_dir: str, plan: str
) -> list[LineCommand]:
    """The trtexec command of ``precision``'s recipe on each TensorRT line.

    Args:
        build_dir: where the command finds the source graphs (the repository's ``build/`` folder).
        plan: the plan file the command writes.
    """
    return line_commands(bundle, precision, EngineBuildOptions(batch=profile), TENSORRT_LINES, build_dir, plan)


def plan_engine(bundle: Bundle, precision: str) -> tuple[Path, EngineMetadata] | None:
    """The newest engine of ``precision`` in the bundle that the recipe makes and Triton can serve.

    Served means: from the bundle's tensor-input graphs (a frame-input engine takes uint8 frames,
    not the preprocessed tensor the detector config declares), on the GPU (not DLA), with a batch
    profile starting at 1; made means: its cache key is the recipe's for the TensorRT version and
    device its sidecar names, with the options it was built with.
    """
    found = recipe_engines(
        bundle.engines_dir, bundle_graphs(bundle), precision, accept=lambda m: m.dla_core is None and m.batch.min == 1
    )
    return found[0] if found else None
