"""Stand-ins for `tensorrt` and `pycuda.driver`, which cannot run without an NVIDIA GPU.

They implement the slice of the name-based API that Osprey calls, and record the calls, so the
tests can check the call sequence (shapes, addresses, copies, flags). Where the real API is
strict they are too: a network with a dynamic input builds only with an optimization profile
that covers it ("Network has dynamic or shape inputs, but no optimization profile has been
defined"), an engine that uses a plugin deserialises only after `init_libnvinfer_plugins`, and
TensorRT 11 has no FP16/INT8 builder flags. The fake ONNX "models" are byte strings: `ONNX`
first (else the parse fails), `dynamic-batch` / `dynamic-hw-nhwc` for dynamic inputs,
`EfficientNMS_TRT` for a plugin. They say nothing else about real TensorRT behaviour; that is
verified only where TensorRT runs (docs/models.md)."""

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


class FakeTensor:
    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name, self.shape = name, shape


class FakeNetwork:
    def __init__(self) -> None:
        self.inputs: list[FakeTensor] = []
        self.plugin = False

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, i: int) -> FakeTensor:
        return self.inputs[i]


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name, lo, opt, hi) -> None:
        assert len(lo) == len(opt) == len(hi)
        assert all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True))
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


def make_tensorrt(built: list, version: str = "10.3.0") -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    major = int(version.split(".")[0])
    trt.registered = []
    trt.errors = []

    class Logger:
        WARNING = 2

        def __init__(self, level) -> None:
            pass

    def init_libnvinfer_plugins(logger, namespace) -> bool:
        trt.registered.append(namespace)
        return True

    class Config:
        def __init__(self) -> None:
            self.flags: list[str] = []
            self.profiles: list[FakeProfile] = []

        def set_memory_pool_limit(self, pool, size) -> None:
            self.workspace = size

        def set_flag(self, flag) -> None:
            self.flags.append(flag)

        def add_optimization_profile(self, profile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

    class Builder:
        platform_has_fast_fp16 = True
        platform_has_fast_int8 = True

        def __init__(self, logger) -> None:
            pass

        def create_network(self, flags):
            return FakeNetwork()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return FakeProfile()

        def build_serialized_network(self, network, config):
            for tensor in network.inputs:
                if all(d >= 0 for d in tensor.shape):
                    continue
                covered = [p.shapes[tensor.name] for p in config.profiles
                           if tensor.name in p.shapes]
                if not covered:
                    trt.errors.append("Network has dynamic or shape inputs, but no "
                                      "optimization profile has been defined.")
                    return None
                for lo, _, hi in covered:
                    for d, a, b in zip(tensor.shape, lo, hi, strict=True):
                        if (d >= 0 and not a == b == d) or min(a, b) < 1:
                            trt.errors.append(f"profile of {tensor.name} does not fit")
                            return None
            built.append(sorted(config.flags))
            body = b"ENGINE " + " ".join(sorted(config.flags)).encode()
            return body + (b" PLUGIN" if network.plugin else b"")

    class OnnxParser:
        def __init__(self, network, logger) -> None:
            self.network = network
            self.errors: list[str] = []

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def parse(self, data) -> bool:
            if not data.startswith(b"ONNX"):
                self.errors.append("bad graph")
                return False
            if b"dynamic-batch" in data:
                shape = (-1, 3, 8, 8)
            elif b"dynamic-hw-nhwc" in data:
                shape = (1, -1, -1, 3)
            else:
                shape = (1, 3, 8, 8)
            self.network.inputs.append(FakeTensor("images", shape))
            self.network.plugin = b"EfficientNMS_TRT" in data
            return True

        def get_error(self, i):
            return self.errors[i]

    class Runtime:
        def __init__(self, logger) -> None:
            pass

        def deserialize_cuda_engine(self, data):
            if not data.startswith(b"ENGINE"):
                return None
            if b"PLUGIN" in data and not trt.registered:
                trt.errors.append("getPluginCreator could not find plugin EfficientNMS_TRT")
                return None
            return FakeEngine()

    trt.Logger, trt.Builder, trt.OnnxParser, trt.Runtime = Logger, Builder, OnnxParser, Runtime
    trt.init_libnvinfer_plugins = init_libnvinfer_plugins
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.BuilderFlag = (types.SimpleNamespace(FP16="FP16", INT8="INT8") if major < 11
                       else types.SimpleNamespace(REFIT="REFIT"))
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.NetworkDefinitionCreationFlag = (types.SimpleNamespace(EXPLICIT_BATCH=0) if major < 10
                                         else types.SimpleNamespace(STRONGLY_TYPED=5))
    trt.nptype = lambda dtype: dtype
    return trt
