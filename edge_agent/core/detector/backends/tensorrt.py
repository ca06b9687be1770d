"""Native TensorRT backend (name-based API, TensorRT >= 8.5) with pycuda buffers.

Engines are built from ONNX by `edge-agent build-engine` (or on first use) and cached under a
key of the model's sha256, the TensorRT version, the precision and the GPU, so an upgraded
JetPack or a new model rebuilds instead of loading a stale engine. Everything here that does not
need the library (keys, precision choice, buffer plans) is plain Python and tested on any
machine; the rest follows NVIDIA's samples and is exercised only where TensorRT runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_agent.core.detector.tensors import TensorSpec
from edge_agent.core.errors import ModelError

log = logging.getLogger("osprey.tensorrt")

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")

SUPPORTED_VERSIONS = "TensorRT 8.5 to 10.x (JetPack 5.1 to 6.x); 11.x for INT8 (Q/DQ) and FP32"
"""What this backend is written for: the name-based I/O API (8.5+). TensorRT 11 removed the
weak-typing builder flags (FP16, INT8): there a Q/DQ model still builds INT8, an FP32 model
builds FP32 (FP16 needs a model converted to FP16 first)."""


class TensorRTUnavailable(ModelError):
    """TensorRT or pycuda cannot be used here; the caller may fall back to ONNX Runtime."""


class EngineBuildError(ModelError):
    """TensorRT cannot parse or build this model (an operator or Q/DQ form it does not take,
    a dynamic input without a profile it can use); the caller may fall back to ONNX Runtime.
    The failure is remembered next to the engine cache, so a restart does not spend minutes
    failing again (delete the `.failed.json` file to retry)."""


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTUnavailable(
            f"TensorRT is not installed ({exc}): on a Jetson it comes with JetPack "
            "(python3-libnvinfer, seen through a --system-site-packages venv); on x86 install "
            "the tensorrt extra"
        ) from None
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise TensorRTUnavailable(f"pycuda is not installed ({exc}): pip install pycuda") from None
    return trt, cuda


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on. Any change gives a new file name."""

    model_sha256: str
    tensorrt_version: str
    precision: str
    gpu: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def engine_path(self, cache_dir: Path, model: Path) -> Path:
        return cache_dir.expanduser() / f"{model.stem}.{self.precision}.{self.digest}.engine"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_qdq(model: Path) -> bool:
    """True when the ONNX file holds QuantizeLinear/DequantizeLinear nodes (explicit INT8)."""
    return b"DequantizeLinear" in model.read_bytes()


def select_precision(requested: str, *, fast_fp16: bool, fast_int8: bool,
                     qdq: bool) -> tuple[str, str | None]:
    """(precision to build, a line to log when it differs from the request).

    A Q/DQ model is built as an explicitly quantized engine whatever was asked; a GPU without
    fast INT8 (Jetson Nano, TX2) cannot run one, which raises TensorRTUnavailable so the caller
    falls back to ONNX Runtime. An FP32 model asked for INT8 builds FP16: INT8 needs the
    quantized model from `edge-agent quantize`."""
    if requested not in ("fp32", "fp16", "int8"):
        raise ValueError(f"unknown precision {requested!r}; valid: fp32, fp16, int8")
    if qdq:
        if not fast_int8:
            raise TensorRTUnavailable(
                "this GPU has no fast INT8 (Jetson Nano or TX2) and the model is INT8 "
                "(Q/DQ): point model.path at the FP32 ONNX and use precision fp16")
        note = None if requested == "int8" else (
            f"the model is INT8 (Q/DQ): building an INT8 engine, not {requested}")
        return "int8", note
    if requested == "int8":
        fallback = "fp16" if fast_fp16 else "fp32"
        reason = ("the model has no Q/DQ nodes (run `edge-agent quantize` for INT8)"
                  if fast_int8 else "this GPU has no fast INT8 (Jetson Nano or TX2)")
        return fallback, f"{reason}: building {fallback.upper()} instead"
    if requested == "fp16" and not fast_fp16:
        return "fp32", "this GPU has no fast FP16: building FP32 instead"
    return requested, None


@dataclass(frozen=True)
class BufferPlan:
    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: type

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


def plan_buffers(tensors: list[tuple[str, bool, tuple[int, ...], type]],
                 profile_shapes: dict[str, tuple[int, ...]] | None = None) -> list[BufferPlan]:
    """Host/device buffer plan from the engine's I/O tensors. A dynamic (-1) input dim takes
    its optimisation-profile shape; a dynamic output must be resolved by the caller first."""
    plans = []
    for name, is_input, shape, dtype in tensors:
        if any(d < 0 for d in shape):
            resolved = (profile_shapes or {}).get(name)
            if resolved is None or len(resolved) != len(shape) or any(d < 0 for d in resolved):
                kind = "input" if is_input else "output"
                raise ModelError(
                    f"TensorRT {kind} {name} has dynamic shape {list(shape)} and no concrete "
                    "shape for it: rebuild the engine with a static input size")
            shape = tuple(resolved)
        plans.append(BufferPlan(name, is_input, tuple(int(d) for d in shape), dtype))
    return plans


def profile_shapes(name: str, shape: tuple[int, ...], batch: tuple[int, int, int] = (1, 1, 1),
                   hw: tuple[int, int] | None = None
                   ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    """(min, opt, max) shapes of an optimization profile for an input with dynamic (-1)
    dims, or None when it has none. The batch dim (0) takes `batch`; height and width take
    `hw`, found by where the 3 colour channels are (NCHW or NHWC)."""
    if all(d >= 0 for d in shape):
        return None
    spatial: dict[int, int] = {}
    if len(shape) == 4:
        h_axis = 2 if shape[1] == 3 else 1 if shape[3] == 3 else None
        if h_axis is not None and hw is not None:
            spatial = {h_axis: hw[0], h_axis + 1: hw[1]}
    lo, opt, hi = list(shape), list(shape), list(shape)
    for i, d in enumerate(shape):
        if d >= 0:
            continue
        if i == 0:
            lo[i], opt[i], hi[i] = batch
        elif i in spatial:
            lo[i] = opt[i] = hi[i] = spatial[i]
        else:
            raise EngineBuildError(
                f"input {name} has dynamic shape {list(shape)}: dim {i} needs a size to build "
                "a TensorRT profile; set detector.profile_hw to [height, width]"
                if len(shape) == 4 else
                f"input {name} has dynamic shape {list(shape)} that Osprey cannot make a "
                "TensorRT profile for; export the model with a static input size")
    return tuple(lo), tuple(opt), tuple(hi)


def set_precision(trt, config, chosen: str) -> str | None:
    """Set the builder flags of `chosen`; a line to log when this TensorRT has none (11.x:
    strongly typed networks, precision from the model's own types and Q/DQ nodes)."""
    flags = trt.BuilderFlag
    wanted = {"fp32": [], "fp16": ["FP16"], "int8": ["FP16", "INT8"]}[chosen]
    missing = [f for f in wanted if not hasattr(flags, f)]
    for f in wanted:
        if hasattr(flags, f):
            config.set_flag(getattr(flags, f))
    if not missing:
        return None
    if chosen == "int8":
        return ("this TensorRT builds strongly typed networks: INT8 comes from the model's Q/DQ "
                "nodes, the rest runs in the model's own types")
    return ("this TensorRT builds strongly typed networks (no FP16 flag): the FP32 model builds "
            "FP32; convert it to FP16 first for an FP16 engine")


def register_plugins(trt, logger) -> None:
    """Load TensorRT's standard plugins (EfficientNMS_TRT, ...). NVIDIA's samples do this
    before parsing and before deserialising: an engine that uses a plugin fails to load in a
    process that has not."""
    init = getattr(trt, "init_libnvinfer_plugins", None)
    if init is not None:
        init(logger, "")


def _failed_marker(path: Path) -> Path:
    return path.with_suffix(".failed.json")


def gpu_name(cuda) -> str:
    cuda.init()
    dev = cuda.Device(0)
    major, minor = dev.compute_capability()
    return f"{dev.name()} sm_{major}{minor}"


def build_engine(model: Path, precision: str, cache_dir: Path, workspace_mb: int = 1024, *,
                 profile_batch: tuple[int, int, int] = (1, 1, 1),
                 profile_hw: tuple[int, int] | None = None) -> Path:
    """Build (or find in the cache) the engine of an ONNX model; returns its path. Raises
    EngineBuildError when TensorRT cannot parse or build it (remembered for this key)."""
    trt, cuda = import_tensorrt()
    if not model.is_file():
        raise ModelError(f"model file {model} not found")
    trt_logger = trt.Logger(trt.Logger.WARNING)
    register_plugins(trt, trt_logger)
    builder = trt.Builder(trt_logger)
    qdq = is_qdq(model)
    chosen, note = select_precision(
        precision, fast_fp16=getattr(builder, "platform_has_fast_fp16", True),
        fast_int8=getattr(builder, "platform_has_fast_int8", True), qdq=qdq)
    if note:
        log.warning("%s: %s", model.name, note)
    key = EngineKey(file_sha256(model), trt.__version__, chosen, gpu_name(cuda))
    path = key.engine_path(cache_dir, model)
    if path.is_file():
        log.info("engine cache hit: %s", path)
        return path
    failed = _failed_marker(path)
    if failed.is_file():
        reason = json.loads(failed.read_text()).get("reason", "unknown")
        raise EngineBuildError(f"TensorRT {key.tensorrt_version} failed before to build "
                               f"{model.name} ({reason}); delete {failed} to try again")
    try:
        serialized = _build(trt, trt_logger, builder, model, chosen, key, workspace_mb,
                            profile_batch, profile_hw)
    except EngineBuildError as exc:
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(json.dumps({**asdict(key), "model": str(model),
                                      "reason": str(exc)}, indent=2))
        raise
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(
        {**asdict(key), "model": str(model), "metadata": _onnx_metadata(model)}, indent=2))
    _prune(path, model, cache_dir)
    return path


def _build(trt, trt_logger, builder, model: Path, chosen: str, key: EngineKey,
           workspace_mb: int, profile_batch: tuple[int, int, int],
           profile_hw: tuple[int, int] | None):
    """Parse and build, as NVIDIA's samples do; the serialized engine."""
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(model.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {model.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    profile = None
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shapes = profile_shapes(tensor.name, tuple(tensor.shape), profile_batch, profile_hw)
        if shapes is not None:
            profile = profile or builder.create_optimization_profile()
            profile.set_shape(tensor.name, *shapes)
            log.info("input %s %s: profile min %s opt %s max %s", tensor.name,
                     list(tensor.shape), *map(list, shapes))
    if profile is not None:
        config.add_optimization_profile(profile)
    note = set_precision(trt, config, chosen)
    if note:
        log.warning("%s: %s", model.name, note)
    log.info("building %s engine of %s for %s (TensorRT %s); this takes minutes", chosen,
             model.name, key.gpu, key.tensorrt_version)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine of {model.name} (its log "
                               "above says why)")
    return serialized


def _onnx_metadata(model: Path) -> dict[str, str]:
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        return dict(sess.get_modelmeta().custom_metadata_map)
    except Exception:  # metadata is a convenience: class names; the engine works without it
        return {}


def _prune(keep: Path, model: Path, cache_dir: Path) -> None:
    """Remove older engines of the same model and precision (other keys: stale)."""
    stem, precision = model.stem, keep.name.split(".")[-3]
    for old in cache_dir.expanduser().glob(f"{stem}.{precision}.*.engine"):
        if old != keep:
            log.info("removing stale engine %s", old.name)
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)


class TensorRTBackend:
    """Runs a serialized engine: page-locked host buffers, device buffers, one CUDA stream."""

    def __init__(self, engine_path: Path) -> None:
        trt, cuda = import_tensorrt()
        cuda.init()
        self._cuda = cuda
        self._ctx = cuda.Device(0).retain_primary_context()
        self._ctx.push()
        try:
            trt_logger = trt.Logger(trt.Logger.WARNING)
            register_plugins(trt, trt_logger)
            runtime = trt.Runtime(trt_logger)
            self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if self.engine is None:
                raise ModelError(f"TensorRT {trt.__version__} cannot load {engine_path}: "
                                 "built by another TensorRT version or for another GPU, or "
                                 "with a plugin this TensorRT lacks; delete it to rebuild")
            self.context = self.engine.create_execution_context()
            tensors, profile = [], {}
            for i in range(self.engine.num_io_tensors):
                name = self.engine.get_tensor_name(i)
                is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                shape = tuple(self.engine.get_tensor_shape(name))
                if is_input and any(d < 0 for d in shape):
                    profile[name] = tuple(self.engine.get_tensor_profile_shape(name, 0)[1])
                    self.context.set_input_shape(name, profile[name])
                if not is_input:
                    shape = tuple(self.context.get_tensor_shape(name))
                tensors.append((name, is_input, shape,
                                trt.nptype(self.engine.get_tensor_dtype(name))))
            self.plan = plan_buffers(tensors, profile)
            self.stream = cuda.Stream()
            self.host, self.device = {}, {}
            for p in self.plan:
                self.host[p.name] = cuda.pagelocked_empty(p.shape, p.dtype)
                self.device[p.name] = cuda.mem_alloc(p.nbytes)
                self.context.set_tensor_address(p.name, int(self.device[p.name]))
        finally:
            self._ctx.pop()
        self.inputs = tuple(TensorSpec(p.name, p.shape, p.dtype) for p in self.plan if p.is_input)
        self.outputs = tuple(TensorSpec(p.name, p.shape, p.dtype)
                             for p in self.plan if not p.is_input)
        sidecar = engine_path.with_suffix(".json")
        self.metadata = (json.loads(sidecar.read_text()).get("metadata", {})
                         if sidecar.is_file() else {})
        self.name = f"tensorrt:{engine_path.name}"

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda = self._cuda
        self._ctx.push()
        try:
            for spec in self.inputs:
                np.copyto(self.host[spec.name], feeds[spec.name], casting="same_kind")
                cuda.memcpy_htod_async(self.device[spec.name], self.host[spec.name], self.stream)
            if not self.context.execute_async_v3(self.stream.handle):
                raise ModelError("TensorRT execute_async_v3 failed")
            for spec in self.outputs:
                cuda.memcpy_dtoh_async(self.host[spec.name], self.device[spec.name], self.stream)
            self.stream.synchronize()
            return {spec.name: self.host[spec.name].copy() for spec in self.outputs}
        finally:
            self._ctx.pop()

    def close(self) -> None:
        self._ctx.push()
        try:
            for buf in self.device.values():
                buf.free()
            self.device.clear()
        finally:
            self._ctx.pop()
