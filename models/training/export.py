"""Export a trained SSDLite to ONNX (opset 17) in the jetson-inference SSD layout."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import torch

from edge_agent.tools.sim import CLASSES
from models.training.nets import ExportWrapper, SSDLite


def export_onnx(model: SSDLite, anchors: torch.Tensor, cfg, path: Path) -> Path:
    """Input `input_0` [1,3,H,W] (RGB, (x/255-0.5)/0.5); outputs `scores` [1,N,C+1] softmaxed
    with class 0 = background and `boxes` [1,N,4] normalised x1,y1,x2,y2. Class names and the
    preprocessing go into the model's metadata, with its domain (`synthetic` or `real`: what
    it was trained for)."""
    model.eval()
    wrapper = ExportWrapper(model, anchors).eval()
    w, h = cfg.size
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(wrapper, (torch.zeros(1, 3, h, w),), str(path), opset_version=17,
                          input_names=["input_0"], output_names=["scores", "boxes"],
                          dynamo=False, do_constant_folding=True)
    proto = onnx.load(str(path))
    classes = list(getattr(cfg, "classes", CLASSES))
    meta = {
        "classes": json.dumps(classes),
        "labels_with_background": json.dumps(["BACKGROUND", *classes]),
        "domain": getattr(cfg, "domain", "synthetic"),
        "model": cfg.name,
        "input": f"RGB {w}x{h} stretched, (x/255 - 0.5) / 0.5, NCHW float32",
        "layout": "ssd",
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    proto.producer_name = "osprey"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path
