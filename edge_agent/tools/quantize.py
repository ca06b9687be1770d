"""Static INT8 quantization to a Q/DQ ONNX model, calibrated on real frames of a source.

The result is what TensorRT builds as an explicitly quantized engine and what ONNX Runtime runs
on the CPU: symmetric INT8 activations and weights (TensorRT takes no zero points), weights per
output channel (axis 0), biases left in float (TensorRT's parser takes only INT8 into
DequantizeLinear, so ONNX Runtime's default INT32 bias quantization would make the engine
unbuildable), activation ranges from percentile or entropy calibration over frames passed
through the model's own preprocessing. Only convolutions are quantized; softmax and the box
decoding after the heads stay in float. Every output is checked against the rules of
TensorRT's parser (edge_agent.tools.qdq) before it is kept.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.qdq import qdq_problems
from edge_agent.core.errors import ModelError, SourceError
from edge_agent.runtime.capture.opencv import open_source

log = logging.getLogger("osprey.quantize")

METHODS = ("percentile", "entropy", "minmax")


class QuantizeError(ModelError):
    """Quantization cannot proceed (no calibration data, unreadable model)."""


@dataclass(frozen=True)
class CalibrationSet:
    input_name: str
    tensors: list[np.ndarray]


def calibration_set(model: Path, source: str, frames: int = 200, stride: int = 5,
                    progress: bool = True) -> CalibrationSet:
    """Prepared input tensors of every `stride`-th frame of `source`, up to `frames`."""
    if frames < 1:
        raise QuantizeError(f"frames must be at least 1, got {frames}")
    det = Detector.from_config(DetectorModelConfig(path=model), RuntimeConfig(providers=["cpu"]))
    try:
        src = open_source("calibration", source, realtime=False)
    except (SourceError, ValueError) as exc:
        raise QuantizeError(f"no calibration data: {exc}") from None
    tensors: list[np.ndarray] = []
    index = 0
    with tqdm(total=frames, desc="calibration frames", unit="frame", disable=not progress) as bar:
        try:
            while len(tensors) < frames:
                frame = src.read()
                if frame is None:
                    break
                if index % stride == 0:
                    feeds, _ = det.adapter.prepare(frame.image)
                    tensors.append(next(iter(feeds.values())))
                    bar.update()
                index += 1
        finally:
            src.close()
    if not tensors:
        raise QuantizeError(f"no calibration data: {source} yielded no frames. INT8 ranges "
                            "must come from real frames of the target camera, never random "
                            "tensors")
    if len(tensors) < 32:
        log.warning("only %d calibration frames from %s: ranges may be poor (aim for 100+)",
                    len(tensors), source)
    return CalibrationSet(det.adapter.input.name, tensors)


def float_nodes(model: Path, patterns: list[str]) -> list[str]:
    """Names of the convolutions of `model` whose name matches one of `patterns` (regexes)."""
    import re

    import onnx

    if not patterns:
        return []
    compiled = [re.compile(p) for p in patterns]
    convs = [n.name for n in onnx.load(str(model)).graph.node if n.op_type == "Conv"]
    names = [n for n in convs if any(c.search(n) for c in compiled)]
    unused = [p for p, c in zip(patterns, compiled, strict=True)
              if not any(c.search(n) for n in convs)]
    if unused:
        raise QuantizeError(f"--keep-float {', '.join(unused)} matches no convolution of "
                            f"{model}; its convolutions are named like {convs[-1]!r}")
    return names


def quantize(model: Path, calib: CalibrationSet, out: Path, method: str = "percentile",
             percentile: float = 99.99, keep_float: list[str] | None = None) -> Path:
    """Write the INT8 Q/DQ model; convolutions named in `keep_float` stay in float."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; valid: {', '.join(METHODS)}")
    if not calib.tensors:
        raise QuantizeError("no calibration data: refusing to quantize without real frames")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calib.tensors)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {calib.input_name: x}

    cal = {"percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy,
           "minmax": CalibrationMethod.MinMax}[method]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        excluded = float_nodes(prepared, keep_float or [])
        quantize_static(
            str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"], per_channel=True, reduce_range=False,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=cal,
            nodes_to_exclude=excluded,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                           "CalibPercentile": percentile, "CalibTensorRangeSymmetric": True,
                           "QuantizeBias": False},
        )
    problems = qdq_problems(out)
    if problems:
        out.unlink(missing_ok=True)
        raise QuantizeError(f"the quantized model is not one TensorRT can parse ({len(problems)} "
                            f"problems, first: {problems[0]}); nothing was written")
    _copy_metadata(model, out, len(excluded))
    return out


def _copy_metadata(src: Path, dst: Path, float_convs: int = 0) -> None:
    import onnx

    a, b = onnx.load(str(src)), onnx.load(str(dst))
    del b.metadata_props[:]
    for prop in a.metadata_props:
        b.metadata_props.append(prop)
    b.metadata_props.append(onnx.StringStringEntryProto(key="quantization",
                                                        value=_quantization(float_convs)))
    onnx.save(b, str(dst))


def _quantization(float_convs: int) -> str:
    text = "int8 qdq symmetric per-channel"
    return text + (f", {float_convs} convolutions in float" if float_convs else "")
