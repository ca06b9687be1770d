"""A model served by Triton Inference Server, over gRPC (`tritonclient`): the cloud side's path
to many GPUs. Each call is one request of batch 1; the server's dynamic batcher gathers the
requests of every worker thread and worker process into batches.

The server owns the model; what the adapter needs to decode it (class names, layout, domain)
comes from the same ONNX file when the worker has it (`model.path`), or from `classes_file`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge_agent.core.detector.tensors import TensorSpec
from edge_agent.core.errors import ModelError

log = logging.getLogger("osprey.detector")

_TRITON_TYPES = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "UINT8": np.uint8,
                 "INT8": np.int8, "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_}


def _client_module():
    try:
        import tritonclient.grpc as grpcclient
    except ImportError:
        raise ModelError("runtime.backend: triton needs tritonclient: pip install "
                         "'osprey[triton]' (or pip install 'tritonclient[grpc]')") from None
    return grpcclient


def local_metadata(path: Path | None) -> dict[str, str]:
    """The ONNX file's metadata (classes, layout, domain) when the worker has the file."""
    if path is None or not Path(path).is_file():
        return {}
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


class TritonBackend:
    def __init__(self, url: str, model: str, metadata: dict[str, str] | None = None,
                 timeout_s: float = 30.0) -> None:
        grpc = _client_module()
        from tritonclient.utils import InferenceServerException

        self._grpc, self._error = grpc, InferenceServerException
        self.url, self.model, self.timeout_s = url, model, timeout_s
        self.client = grpc.InferenceServerClient(url=url)
        try:
            ready = self.client.is_model_ready(model)
        except InferenceServerException as exc:
            raise ModelError(f"Triton at {url} does not answer ({exc.message()}): start the "
                             "server or fix runtime.triton_url") from None
        if not ready:
            raise ModelError(f"Triton at {url} has no ready model {model!r}: load it in the "
                             "server's model repository or fix runtime.triton_model")
        meta = self.client.get_model_metadata(model, as_json=True)
        self.inputs = tuple(self._spec(t) for t in meta["inputs"])
        self.outputs = tuple(self._spec(t) for t in meta["outputs"])
        self._output_names = [o.name for o in self.outputs]
        self.metadata = dict(metadata or {})
        self.name = f"triton:{model}@{url}"
        self.fallback: str | None = None
        log.info("model %s served by Triton at %s", model, url)

    @staticmethod
    def _spec(t: dict) -> TensorSpec:
        shape = tuple(int(d) if int(d) >= 0 else None for d in t["shape"])
        if t["datatype"] not in _TRITON_TYPES:
            raise ModelError(f"Triton tensor {t['name']} has type {t['datatype']}, which the "
                             "detector does not read")
        return TensorSpec(t["name"], shape, _TRITON_TYPES[t["datatype"]])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from tritonclient.utils import np_to_triton_dtype

        inputs = []
        for name, value in feeds.items():
            value = np.ascontiguousarray(value)
            item = self._grpc.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
            item.set_data_from_numpy(value)
            inputs.append(item)
        wanted = [self._grpc.InferRequestedOutput(n) for n in self._output_names]
        try:
            result = self.client.infer(self.model, inputs, outputs=wanted,
                                       client_timeout=self.timeout_s)
        except self._error as exc:
            raise ModelError(f"Triton at {self.url} failed on {self.model}: "
                             f"{exc.message()}") from None
        return {n: result.as_numpy(n) for n in self._output_names}

    def close(self) -> None:
        self.client.close()
