"""The seam every inference runtime implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge_agent.core.detector.tensors import TensorSpec


class DetectorBackend(Protocol):
    name: str
    """What actually runs, e.g. `onnxruntime:CUDAExecutionProvider` or `tensorrt:int8`."""
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...
