"""Class names: from config, a file, the model's metadata, or COCO for 80-class models."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.core.errors import ModelError

COCO80 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
METADATA_KEY = "classes"
"""ONNX metadata key holding a JSON list of class names (Osprey's exports write it)."""


def read_classes_file(path: str | Path) -> tuple[str, ...]:
    path = Path(path)
    try:
        names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise ModelError(f"cannot read class names from {path}: {exc}") from None
    names = [n for n in names if n]
    if not names:
        raise ModelError(f"class names file {path} is empty: one name per line")
    return tuple(names)


def resolve_classes(explicit: list[str] | tuple[str, ...] | None, file: str | Path | None,
                    metadata: dict[str, str], num_classes: int | None) -> tuple[str, ...]:
    if explicit:
        return tuple(explicit)
    if file:
        return read_classes_file(file)
    if METADATA_KEY in metadata:
        try:
            return tuple(json.loads(metadata[METADATA_KEY]))
        except (ValueError, TypeError):
            return tuple(n.strip() for n in metadata[METADATA_KEY].split(","))
    if num_classes == len(COCO80):
        return COCO80
    return ()
