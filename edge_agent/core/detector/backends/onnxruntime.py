"""ONNX Runtime backend: TensorRT EP, CUDA EP or the CPU, chosen from config or found."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from edge_agent.core.config.common import RuntimeConfig
from edge_agent.core.detector.tensors import TensorSpec
from edge_agent.core.errors import ModelError

log = logging.getLogger("osprey.detector")

ORT_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def resolve_providers(wanted: list[str], available: list[str], precision: str,
                      engine_cache_dir: Path) -> list[str | tuple[str, dict]]:
    """ONNX Runtime provider list for `wanted` (config names, or ["auto"]).

    auto takes TensorRT, then CUDA, then the CPU, as far as this build has them. An explicit
    provider this build lacks is skipped with a warning; the CPU always ends the list."""
    order = ["tensorrt", "cuda", "cpu"] if wanted == ["auto"] else list(wanted)
    out: list[str | tuple[str, dict]] = []
    for name in order:
        ort_name = ORT_NAMES[name]
        if ort_name not in available:
            if wanted != ["auto"]:
                log.warning("ONNX Runtime provider %s is not in this build (available: %s); "
                            "skipping it", ort_name, ", ".join(available))
            continue
        if name == "tensorrt":
            out.append((ort_name, {
                "trt_fp16_enable": precision in ("fp16", "int8"),
                "trt_int8_enable": precision == "int8",
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(engine_cache_dir.expanduser()),
            }))
        else:
            out.append(ort_name)
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")
    return out


def available_cores(sys_root: Path = Path("/sys")) -> int:
    """Physical cores this process may use: the CPUs of its affinity mask (taskset, cpusets),
    hyperthreads of one core counted once (ONNX Runtime's own default counts cores, not
    threads), and at most a cgroup CPU quota (`docker --cpus`, Kubernetes limits)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topo = sys_root / f"devices/system/cpu/cpu{cpu}/topology"
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(),
                       (topo / "core_id").read_text().strip()))
        except OSError:  # no topology (some containers): one core per CPU
            cores.add(("cpu", str(cpu)))
    n = len(cores)
    quota = cgroup_cpu_quota(sys_root)
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


def cgroup_cpu_quota(sys_root: Path = Path("/sys")) -> float | None:
    """CPUs' worth of time the cgroup may use (v2 `cpu.max`, v1 CFS quota); None: no limit."""
    try:
        quota, period = (sys_root / "fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((sys_root / "fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int((sys_root / "fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def intra_op_threads(runtime: RuntimeConfig, providers: list[str | tuple[str, dict]],
                     cores: int | None = None) -> int:
    """The session's intra-op thread count: the configured one; else, with the model on the
    CPU and `leave_cores` set, every core but those; else 0 (the library's default)."""
    if runtime.intra_op_threads or not runtime.leave_cores:
        return runtime.intra_op_threads
    first = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if first != "CPUExecutionProvider":
        return 0
    return max(1, (cores or available_cores()) - runtime.leave_cores)


def damaged(path: str | Path, detail: str) -> str:
    """What to say when a model file does not load: the reason in a line, and what to do."""
    reason = detail.splitlines()[0] if detail else "unknown reason"
    reason = (reason.split(" failed:", 1)[-1].strip() or reason).rstrip(".")  # ORT: path first
    try:
        size = f"{Path(path).stat().st_size:,} bytes"
    except OSError:
        size = "unreadable"
    return (f"{path} ({size}) is not a usable ONNX model: {reason}. The file is damaged, "
            "truncated or not an ONNX model: copy or export it again (a download that "
            "stopped early looks like this); the bundled models are in models/, and "
            "`edge-agent doctor` checks the configured one")


class OnnxRuntimeBackend:
    """One ONNX Runtime session; `name` says which provider actually runs the model."""

    def __init__(self, session, source: str = "model") -> None:
        self.session = session
        self.source = source
        self.inputs = tuple(TensorSpec.from_ort(a) for a in session.get_inputs())
        self.outputs = tuple(TensorSpec.from_ort(a) for a in session.get_outputs())
        try:
            self.metadata = dict(session.get_modelmeta().custom_metadata_map)
        except UnicodeDecodeError as exc:  # a damaged file whose graph still parses
            raise ModelError(damaged(source, f"its metadata is not text: {exc.reason} at byte "
                                             f"{exc.start}")) from None
        self.provider = session.get_providers()[0]
        self.name = f"onnxruntime:{self.provider}"
        self._output_names = [o.name for o in self.outputs]
        self.fallback: str | None = None
        """Why the configured TensorRT backend is not the one running (make_backend)."""

    @classmethod
    def from_config(cls, path: str | Path, runtime: RuntimeConfig | None = None
                    ) -> OnnxRuntimeBackend:
        import onnxruntime as ort

        runtime = runtime or RuntimeConfig()
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file {path} not found: check model.path (or --model)")
        providers = resolve_providers(runtime.providers, ort.get_available_providers(),
                                      runtime.precision, runtime.engine_cache_dir)

        def session_with(threads: int):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = runtime.inter_op_threads
            if not runtime.spin:
                # Idle intra-op threads spin for a while after each run by default: fine for
                # a benchmark loop, but on a small CPU they starve the capture, tracking and
                # publishing threads that run between inferences.
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            try:
                return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
            except Exception as exc:  # ORT raises its own exception types for bad files
                raise ModelError(damaged(path, str(exc))) from None

        if any(isinstance(p, tuple) for p in providers):
            runtime.engine_cache_dir.expanduser().mkdir(parents=True, exist_ok=True)
        threads = intra_op_threads(runtime, providers)
        session = session_with(threads)
        # A GPU provider that is in the build but cannot run here (no driver, no device) falls
        # back to the CPU silently: the threads are then the CPU's to set.
        ran = intra_op_threads(runtime, session.get_providers())
        if ran != threads:
            session = session_with(ran)
        backend = cls(session, str(path))
        log.info("model %s runs on %s (asked for %s)", path.name, backend.provider,
                 ", ".join(p if isinstance(p, str) else p[0] for p in providers))
        return backend

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self._output_names, feeds)
        return dict(zip(self._output_names, values, strict=True))

    def close(self) -> None:
        self.session = None
