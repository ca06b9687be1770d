"""Stand-ins for `tensorrt` and `pycuda.driver`, which cannot run without an NVIDIA GPU.

They implement the slice of the name-based API that Osprey calls, and record the calls, so the
tests can check the call sequence (shapes, addresses, copies, flags). They say nothing about
real TensorRT behaviour; that is verified only where TensorRT runs (docs/models.md)."""

from __future__ import annotations

import itertools
import types
from typing import ClassVar

import numpy as np

DEVICE: dict[int, np.ndarray] = {}
_ids = itertools.count(1000)


class DeviceAllocation:
    def __init__(self, nbytes: int) -> None:
        self.ptr = next(_ids)
        DEVICE[self.ptr] = np.zeros(nbytes, np.uint8)
        self.freed = False

    def __int__(self) -> int:
        return self.ptr

    def free(self) -> None:
        self.freed = True
        DEVICE.pop(self.ptr, None)


class Context:
    depth = 0

    def push(self) -> None:
        Context.depth += 1

    def pop(self) -> None:
        Context.depth -= 1


class Device:
    def __init__(self, i: int) -> None:
        self.i = i

    def name(self) -> str:
        return "Fake Orin"

    def compute_capability(self) -> tuple[int, int]:
        return (8, 7)

    def retain_primary_context(self) -> Context:
        return Context()


class Stream:
    handle = 77

    def synchronize(self) -> None:
        pass


def _htod(dev, host, stream) -> None:
    DEVICE[int(dev)][:] = np.frombuffer(np.ascontiguousarray(host).tobytes(), np.uint8)


def _dtoh(host, dev, stream) -> None:
    host[...] = np.frombuffer(DEVICE[int(dev)].tobytes(), host.dtype).reshape(host.shape)


def make_pycuda() -> tuple[types.ModuleType, types.ModuleType]:
    driver = types.ModuleType("pycuda.driver")
    driver.init = lambda: None
    driver.Device = Device
    driver.Stream = Stream
    driver.pagelocked_empty = lambda shape, dtype: np.zeros(shape, dtype)
    driver.mem_alloc = DeviceAllocation
    driver.memcpy_htod_async = _htod
    driver.memcpy_dtoh_async = _dtoh
    pkg = types.ModuleType("pycuda")
    pkg.driver = driver
    return pkg, driver


class FakeEngine:
    """One input `images` (dynamic batch in the engine, 1x3x8x8 in its profile) and one
    output `output` (1, 2) = (sum, max) of the input."""

    IO: ClassVar[dict] = {"images": ("in", (-1, 3, 8, 8)), "output": ("out", (1, 2))}

    def __init__(self) -> None:
        self.num_io_tensors = len(self.IO)

    def get_tensor_name(self, i: int) -> str:
        return list(self.IO)[i]

    def get_tensor_mode(self, name: str) -> str:
        return self.IO[name][0]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.IO[name][1]

    def get_tensor_dtype(self, name: str):
        return np.float32

    def get_tensor_profile_shape(self, name: str, profile: int):
        return ((1, 3, 8, 8),) * 3

    def create_execution_context(self) -> FakeExecutionContext:
        return FakeExecutionContext()


class FakeExecutionContext:
    def __init__(self) -> None:
        self.addresses: dict[str, int] = {}
        self.input_shapes: dict[str, tuple] = {}
        self.executed_on: list[int] = []

    def set_input_shape(self, name, shape) -> None:
        self.input_shapes[name] = tuple(shape)

    def get_tensor_shape(self, name):
        return self.input_shapes.get(name, FakeEngine.IO[name][1])

    def set_tensor_address(self, name, ptr) -> None:
        self.addresses[name] = ptr

    def execute_async_v3(self, handle) -> bool:
        self.executed_on.append(handle)
        x = np.frombuffer(DEVICE[self.addresses["images"]].tobytes(), np.float32)
        DEVICE[self.addresses["output"]][:] = np.frombuffer(
            np.array([x.sum(), x.max()], np.float32).tobytes(), np.uint8)
        return True


def make_tensorrt(built: list) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"

    class Logger:
        WARNING = 2

        def __init__(self, level) -> None:
            pass

    class Config:
        def __init__(self) -> None:
            self.flags: list[str] = []

        def set_memory_pool_limit(self, pool, size) -> None:
            self.workspace = size

        def set_flag(self, flag) -> None:
            self.flags.append(flag)

    class Builder:
        platform_has_fast_fp16 = True
        platform_has_fast_int8 = True

        def __init__(self, logger) -> None:
            pass

        def create_network(self, flags):
            return object()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            built.append(sorted(config.flags))
            return b"ENGINE " + " ".join(sorted(config.flags)).encode()

    class OnnxParser:
        num_errors = 1

        def __init__(self, network, logger) -> None:
            pass

        def parse(self, data) -> bool:
            return data.startswith(b"ONNX")

        def get_error(self, i):
            return "bad graph"

    class Runtime:
        def __init__(self, logger) -> None:
            pass

        def deserialize_cuda_engine(self, data):
            return FakeEngine() if data.startswith(b"ENGINE") else None

    trt.Logger, trt.Builder, trt.OnnxParser, trt.Runtime = Logger, Builder, OnnxParser, Runtime
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    trt.nptype = lambda dtype: dtype
    return trt
