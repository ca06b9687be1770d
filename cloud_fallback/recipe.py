"""The worker's answer recipe, as a pure function the worker and the benchmarks both call:
the detector's detections on a window's keyframes -> fused across the keyframes -> the answer's
score floor -> one label per object -> the image-text model's second opinion and text-query
matches -> the floor again (the opinion rescored them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloud_fallback.fusion import FUSION_WEIGHT, fuse_keyframes
from cloud_fallback.opinion import TextOpinion
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.nms import one_label_per_object
from edge_agent.core.protocol import WireMatch


@dataclass(frozen=True, kw_only=True)
class Recipe:
    fuse: bool = True
    """Fuse detections across the window's keyframes (cloud_fallback.fusion)."""
    fusion_weight: float = FUSION_WEIGHT
    min_score: float = 0.2
    """Answers keep detections of at least this score."""

    @classmethod
    def from_config(cls, model) -> Recipe:
        """From the worker's `model` config (CloudModelConfig)."""
        return cls(fuse=model.fuse_keyframes, fusion_weight=model.fusion_weight,
                   min_score=model.min_score)


@dataclass(frozen=True, kw_only=True)
class Keyframes:
    """What the image-text model needs of a window's keyframes."""

    images: Sequence[np.ndarray]
    """The decoded keyframes."""
    indices: Sequence[int]
    """Their frame indices."""
    scales: Sequence[tuple[float, float]]
    """Decoded pixels -> frame pixels (a keyframe may travel smaller than the frame)."""


def refine(per_frame: list[Detections], recipe: Recipe, *, opinion: TextOpinion | None = None,
           keyframes: Keyframes | None = None, queries: Sequence[str] = (),
           perspective: Sequence[float] | None = None
           ) -> tuple[list[Detections], list[WireMatch]]:
    """The answer for a window from the detector's detections on its keyframes: detections per
    keyframe, and the matches of the text `queries`. The opinion needs `keyframes`."""
    if recipe.fuse:
        per_frame = fuse_keyframes(per_frame, recipe.fusion_weight)
    floor = recipe.min_score
    # one box per object before the opinion and the matches: a query then matches an
    # object once, under its best-supported label
    per_frame = [one_label_per_object(d[d.score >= floor]) for d in per_frame]
    matches: list[WireMatch] = []
    if opinion is not None:
        if keyframes is None:
            raise ValueError("the image-text opinion needs the keyframes' images")
        per_frame, matches = opinion.apply(list(keyframes.images), per_frame,
                                           list(keyframes.indices), list(keyframes.scales),
                                           list(queries), perspective)
        per_frame = [d[d.score >= floor] for d in per_frame]  # rescored
    return per_frame, matches
