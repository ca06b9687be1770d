"""`bench sizes`: sizes in text queries as the system reads them, by the scale line the agent
learns from its own detections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edge_agent.core.detector import FrameDetector
from edge_agent.core.detector.nms import iou_matrix
from edge_agent.core.sizes import SIZES, Perspective, class_heights, size_class, size_ratio
from edge_agent.tools.sim import SyntheticWorld, WorldOptions


def bench_sizes(edge: FrameDetector, cloud: Any, seeds: list[int], preset: str, seconds: float,
                progress: Callable[[str], None] = lambda _: None, fit_every: int = 2,
                judge_every: int = 30, min_seconds: float = 180.0) -> dict[str, Any]:
    """Sizes in text queries, as the system reads them: the camera's scale line learned by
    `Perspective` from the edge's detections of every `fit_every`-th frame over `seconds`,
    then the size of each cloud detection (score >= 0.5) of every `judge_every`-th frame
    in the last third, against the true size of the whole object it covers (IoU >= 0.5,
    same class, under 10 % occluded, inside the frame)."""
    total = np.zeros((3, 3), int)
    per_seed = []
    for seed in seeds:
        world = SyntheticWorld(WorldOptions.from_preset(preset, seed=seed))
        persp = Perspective(edge.class_names, min_seconds=min_seconds)
        n = round(seconds * world.options.fps)
        judged = []
        for i in range(0, n, fit_every):
            rendered, truth = world.render(i)
            persp.add(edge(rendered.image), world.options.width, world.options.height,
                      t=truth.t)
            if i >= 2 * n // 3 and i % judge_every == 0:
                judged.append((i, cloud(rendered.image), truth))
            if i % 1800 < fit_every:
                progress(f"sizes: seed {seed}, {i / world.options.fps:.0f} s")
        line = persp.line
        conf = np.zeros((3, 3), int)
        for _, dets, truth in judged if line is not None else []:
            dets = dets[dets.score >= 0.5]
            objs = [o for o in truth.objects if o.box is not None and o.occlusion < 0.1
                    and o.truncation == 0]
            if not len(dets) or not objs:
                continue
            read = size_class(size_ratio(dets, line, class_heights(dets.class_names),
                                         (world.options.width, world.options.height)))
            m = iou_matrix(np.array([o.box for o in objs], np.float32), dets.xyxy)
            for k, o in enumerate(objs):
                j = int(m[k].argmax())
                if m[k, j] < 0.5 or dets.class_names[int(dets.class_id[j])] != o.cls \
                        or read[j] is None:
                    continue
                conf[SIZES.index(o.size), SIZES.index(read[j])] += 1
        total += conf
        per_seed.append({"seed": seed, "line": line, "horizon_row": (
            round(-line[1] / line[0], 1) if line else None), "samples": persp.samples,
            **_size_figures(conf)})
    return {"preset": preset, "seconds": seconds, "seeds": list(seeds),
            **_size_figures(total), "per_seed": per_seed}


def _size_figures(conf: np.ndarray) -> dict[str, Any]:
    n = int(conf.sum())
    return {"judged": n, "accuracy": round(float(np.trace(conf)) / n, 4) if n else None,
            "commonest_size": round(float(conf.sum(axis=1).max()) / n, 4) if n else None,
            "confusion": {t: dict(zip(SIZES, map(int, row), strict=True))
                          for t, row in zip(SIZES, conf, strict=True)}}
