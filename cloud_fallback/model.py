"""The cloud's detector as its config describes it: one recipe for the worker, `cloud-fallback
detect` and the benchmarks."""

from __future__ import annotations

from pathlib import Path

from cloud_fallback.config import CloudModelConfig
from edge_agent.core.bundled import bundled_cloud_model
from edge_agent.core.detector import Detector
from edge_agent.core.detector.ensemble import EnsembleDetector, EnsembleSettings
from edge_agent.core.detector.tiling import TiledDetector


def build_detector(model: CloudModelConfig):
    """`merge: nms`: the detector, with its tiles merged by NMS (TiledDetector).
    `merge: wbf`: every detector over the whole frame, its mirror and tiles, fused by weighted
    box fusion (EnsembleDetector)."""
    main = Detector.from_config(model.detector, model.runtime,
                                default_path=model.detector.path or bundled_cloud_model())
    if model.merge == "nms":
        if model.tiles:
            cols, rows = (int(v) for v in model.tiles.split("x"))
            return TiledDetector(main, cols, rows)
        return main
    detectors = [main] + [Detector.from_config(d, model.runtime) for d in model.extra_detectors]
    if model.tiles is None:
        tiles = (0, 0)
    elif model.tiles == "auto":
        tiles = None
    else:
        tiles = tuple(int(v) for v in model.tiles.split("x"))
    floor = min(d.score_threshold for d in [model.detector, *model.extra_detectors])
    return EnsembleDetector(detectors, EnsembleSettings(
        flip=model.flip, tiles=tiles, tile_px=model.tile_px, floor=floor))


def model_id(model: CloudModelConfig) -> str:
    """The detectors' names, as answers carry them ('a+b' for an ensemble)."""
    paths = [model.detector.path or bundled_cloud_model(), *(d.path for d in model.extra_detectors)]
    return "+".join(Path(p).stem for p in paths if p)


def recipe_id(model: CloudModelConfig) -> str:
    """How the views are merged, for the cache key (answers of other settings differ)."""
    if model.merge == "nms":
        return f"tiles={model.tiles}"
    return f"wbf|flip={int(model.flip)}|tiles={model.tiles}@{model.tile_px}"
