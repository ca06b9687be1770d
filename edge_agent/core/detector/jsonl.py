"""Detections as JSON lines, one per frame: what `edge-agent detect` and `cloud-fallback detect`
write and `edge-agent eval --detections` reads back.

    {"frame": 12, "timestamp": 1764312000.5, "width": 1280, "height": 720,
     "detections": [{"label": "car", "class_id": 2, "score": 0.91, "box": [x1, y1, x2, y2]}]}
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_agent.core.detector.detections import Detections
from edge_agent.core.errors import OspreyError


def detection_line(frame: int, timestamp: float, width: int, height: int,
                   dets: Detections) -> str:
    return json.dumps({"frame": frame, "timestamp": round(timestamp, 6), "width": width,
                       "height": height, "detections": dets.to_json()},
                      separators=(",", ":")) + "\n"


def read_detection_lines(path: Path) -> dict[int, Detections]:
    """Frame index -> Detections of a JSON-lines file; class ids follow the labels' first
    appearance (scoring matches labels by name)."""
    if not path.is_file():
        raise OspreyError(f"{path}: no such detections file (write one with `edge-agent "
                          "detect --out` or `cloud-fallback detect --out`)")
    rows: dict[int, list[dict]] = {}
    names: list[str] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            frame = int(item["frame"])
            dets = [(str(d["label"]), float(d["score"]), [float(v) for v in d["box"]])
                    for d in item["detections"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise OspreyError(f"{path}:{n}: not a detections line ({exc}); expected "
                              '{"frame": N, "detections": [{"label", "score", "box"}...]}'
                              ) from None
        for label, _, box in dets:
            if len(box) != 4:
                raise OspreyError(f"{path}:{n}: a box needs 4 numbers (x1, y1, x2, y2)")
            if label not in names:
                names.append(label)
        rows[frame] = dets
    out = {}
    for frame, dets in rows.items():
        out[frame] = Detections(
            np.asarray([b for _, _, b in dets], np.float32).reshape(-1, 4),
            np.asarray([s for _, s, _ in dets], np.float32),
            np.asarray([names.index(lab) for lab, _, _ in dets], np.int64), tuple(names))
    return out
