"""Serve an ONNX detector from Triton Inference Server with dynamic batching, on any machine.

The `nvidia-pytriton` wheel ships a Triton server; this binds an ONNX Runtime session to it
(Triton's Python backend), so the cloud worker's `runtime.backend: triton` can be tried and
tested without a GPU or a model repository. On GPUs, serve the ONNX file with Triton's own
onnxruntime or TensorRT backend instead (model_repository/ beside this file).

    python deploy/triton/pytriton_onnx.py --model models/cloud/osprey_cloud_ssdlite.onnx \
        --name osprey_cloud_ssdlite --grpc-port 8001 --http-port 8000 --max-batch 8

Needs an interpreter that matches the wheel's Python backend stub (a virtual environment made
from the system's python3 on Debian 12): pip install nvidia-pytriton onnxruntime numpy.
Prints `ready` on stdout once the model is loaded; stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
         "tensor(int32)": np.int32, "tensor(uint8)": np.uint8}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="ONNX file")
    ap.add_argument("--name", required=True, help="the model's name in Triton")
    ap.add_argument("--grpc-port", type=int, default=8001)
    ap.add_argument("--http-port", type=int, default=8000)
    ap.add_argument("--metrics-port", type=int, default=8002)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-delay-us", type=int, default=2000,
                    help="how long the dynamic batcher waits for more requests")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, sess_options=opts,
                                   providers=ort.get_available_providers())
    (inp,) = session.get_inputs()
    outs = session.get_outputs()
    one_at_a_time = inp.shape[0] == 1  # a graph exported for batch 1: run the batch in turn

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        x = inputs[inp.name]
        if one_at_a_time:
            runs = [session.run(None, {inp.name: x[i:i + 1]}) for i in range(len(x))]
            values = [np.concatenate(v) for v in zip(*runs, strict=True)]
        else:
            values = session.run(None, {inp.name: x})
        return {o.name: v for o, v in zip(outs, values, strict=True)}

    def dims(shape) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape[1:])

    config = TritonConfig(grpc_port=args.grpc_port, http_port=args.http_port,
                          metrics_port=args.metrics_port)
    with Triton(config=config) as triton:
        triton.bind(
            model_name=args.name, infer_func=infer,
            inputs=[Tensor(name=inp.name, dtype=TYPES[inp.type], shape=dims(inp.shape))],
            outputs=[Tensor(name=o.name, dtype=TYPES[o.type], shape=dims(o.shape))
                     for o in outs],
            config=ModelConfig(max_batch_size=args.max_batch, batcher=DynamicBatcher(
                max_queue_delay_microseconds=args.max_delay_us)),
            strict=True)
        print("ready", flush=True)
        triton.serve()


if __name__ == "__main__":
    main()
