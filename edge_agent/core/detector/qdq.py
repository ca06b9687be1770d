"""Whether a Q/DQ ONNX graph is one TensorRT's ONNX parser builds as an explicitly quantized
engine.

TensorRT's explicit quantization (onnx-tensorrt's QuantizeLinear / DequantizeLinear, TensorRT
8.6 and 10.x) takes INT8 (10.x also FP8 and INT4) inputs to DequantizeLinear, symmetric
quantization (zero points 0), per-tensor scales for activations and per-channel scales for
weights only along the output-channel axis 0. A bias quantized to INT32 (ONNX Runtime's
`QuantizeBias`, on by default) makes the parse fail ("DequantizeLinear: only INT8 input is
supported"), and the agent would never get an engine. The checker reads the graph with `onnx`
and names every node that breaks a rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PARSER_RULES = ("DequantizeLinear inputs are INT8", "zero points are 0",
                "per-channel scales only on axis 0 of weights",
                "activation scales are per tensor", "no quantized (INT32) biases")


def qdq_problems(model: Path | str) -> list[str]:
    """What in the model's Q/DQ nodes TensorRT's parser refuses; empty when it accepts all."""
    import onnx
    from onnx import TensorProto, numpy_helper

    graph = onnx.load(str(model), load_external_data=False).graph
    inits = {t.name: t for t in graph.initializer}
    q_zero_type = {}
    for n in graph.node:
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits:
            q_zero_type[n.output[0]] = inits[n.input[2]].data_type
    problems = []
    for n in graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        where = f"{n.op_type} {n.name or n.output[0]}"
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        scale = inits.get(n.input[1])
        per_channel = scale is not None and numpy_helper.to_array(scale).size > 1
        bias = n.input[0] in inits and inits[n.input[0]].data_type == TensorProto.INT32
        if len(n.input) > 2 and n.input[2] in inits and not bias:
            zp = inits[n.input[2]]
            if zp.data_type != TensorProto.INT8:
                problems.append(f"{where}: zero point is {TensorProto.DataType.Name(zp.data_type)}"
                                ", not INT8")
            elif np.any(numpy_helper.to_array(zp) != 0):
                problems.append(f"{where}: zero point is not 0 (TensorRT takes symmetric "
                                "quantization only)")
        if n.op_type != "DequantizeLinear":
            if per_channel:
                problems.append(f"{where}: an activation quantized per channel (TensorRT takes "
                                "per-tensor scales for activations)")
            continue
        src = n.input[0]
        if src in inits:
            dtype = inits[src].data_type
            if dtype == TensorProto.INT32:
                problems.append(f"{where}: dequantizes an INT32 bias ({src}); quantize with "
                                "QuantizeBias off")
            elif dtype != TensorProto.INT8:
                problems.append(f"{where}: input {src} is {TensorProto.DataType.Name(dtype)}, "
                                "not INT8")
            elif per_channel and axis != 0:
                problems.append(f"{where}: weights quantized per channel on axis {axis}, not "
                                "0 (the output channels)")
        elif q_zero_type.get(src, TensorProto.INT8) != TensorProto.INT8:
            problems.append(f"{where}: its QuantizeLinear is not INT8")
        elif per_channel:
            problems.append(f"{where}: an activation dequantized per channel")
    return problems
