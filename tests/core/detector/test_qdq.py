"""The Q/DQ checker: what TensorRT's ONNX parser refuses (INT32 biases into DequantizeLinear,
non-zero or non-INT8 zero points, weights per channel on another axis than 0, activations per
channel), on small graphs made here and on every shipped INT8 model."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnx", reason="the Q/DQ checker reads graphs with `onnx`")
from qdq_graphs import conv_qdq

from edge_agent.core.detector.qdq import qdq_problems

REPO = Path(__file__).resolve().parents[3]


def test_the_form_tensorrt_takes_has_no_problems(tmp_path):
    assert qdq_problems(conv_qdq(tmp_path / "ok.onnx")) == []


@pytest.mark.parametrize(("knobs", "expected"), [
    ({"bias_int32": True}, "INT32 bias"),
    ({"weight_axis": 1}, "per channel on axis 1"),
    ({"zero_point": 3}, "zero point is not 0"),
    ({"act_per_channel": True}, "per channel"),
])
def test_each_rule_is_checked(tmp_path, knobs, expected):
    problems = qdq_problems(conv_qdq(tmp_path / "bad.onnx", **knobs))
    assert problems and any(expected in p for p in problems), problems


@pytest.mark.parametrize("path", sorted((REPO / "models").rglob("*int8*.onnx")),
                         ids=lambda p: p.name)
def test_every_shipped_int8_model_passes_tensorrts_parser_rules(path):
    assert qdq_problems(path) == []
