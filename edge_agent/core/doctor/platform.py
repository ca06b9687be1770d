"""Checks of the machine: Python, OpenCV, ONNX Runtime, TensorRT, pycuda, the GPU."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from edge_agent.core.config.common import RuntimeConfig
from edge_agent.core.detector.backends.tensorrt import SUPPORTED_VERSIONS
from edge_agent.core.doctor.report import Check, fail, ok, skip, warn

TEGRA_RELEASE = Path("/etc/nv_tegra_release")
JETSON_VENV = ("use a virtual environment made with --system-site-packages and install the "
               "agent with requirements/jetson.txt and --no-deps (scripts/install_jetson.sh "
               "does both)")


def l4t_release(path: Path = TEGRA_RELEASE) -> str | None:
    """`36.3` from `# R36 (release), REVISION: 3.0, ...`; None off a Jetson."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)", text)
    return f"{m[1]}.{m[2]}" if m else "unknown"


def check_python() -> Check:
    v = sys.version_info
    text = f"{v.major}.{v.minor}.{v.micro} at {sys.executable}"
    if v < (3, 10):
        return fail("python", text, "Osprey needs Python 3.10 to 3.12 (JetPack 6 ships 3.10)")
    if v >= (3, 13):
        return warn("python", f"{text}: newer than the tested 3.10 to 3.12",
                    "use Python 3.10 to 3.12 if something misbehaves")
    return ok("python", text)


def build_flag(info: str, name: str) -> bool:
    """Whether `cv2.getBuildInformation()` says YES for a Video I/O backend."""
    for line in info.splitlines():
        key, _, value = line.strip().partition(":")
        if key.strip().lower() == name.lower():
            return value.strip().upper().startswith("YES")
    return False


def check_opencv(camera_kinds: set[str], jetson: bool) -> Check:
    """`camera_kinds`: what the configured cameras need of OpenCV (`stream`: FFmpeg,
    `gstreamer`: GStreamer; others nothing)."""
    try:
        import cv2
    except ImportError as exc:
        return fail("opencv", f"cannot import cv2 ({exc})",
                    "pip install opencv-python-headless; on a Jetson use JetPack's OpenCV: "
                    + JETSON_VENV)
    info = cv2.getBuildInformation()
    gst, ffmpeg = build_flag(info, "GStreamer"), build_flag(info, "FFMPEG")
    text = (f"OpenCV {cv2.__version__}: FFmpeg {'yes' if ffmpeg else 'no'}, "
            f"GStreamer {'yes' if gst else 'no'} ({Path(cv2.__file__).parent})")
    kinds = camera_kinds
    if "gstreamer" in kinds and not gst:
        return fail("opencv", f"{text}: gst:// cameras need GStreamer",
                    "on a Jetson, JetPack's OpenCV has it (pip wheels never do): " + JETSON_VENV)
    if "stream" in kinds and not ffmpeg:
        return fail("opencv", f"{text}: rtsp/http cameras need FFmpeg",
                    "install an OpenCV built with FFmpeg (opencv-python-headless has it)")
    if jetson and not gst:
        return warn("opencv", f"{text}: not JetPack's OpenCV (no CSI cameras, no hardware "
                    "decode)", "pip uninstall opencv-python opencv-python-headless; "
                    + JETSON_VENV)
    return ok("opencv", text)


def check_onnxruntime(runtime: RuntimeConfig, jetson: bool) -> Check:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return fail("onnxruntime", f"cannot import onnxruntime ({exc})",
                    "pip install onnxruntime (on a Jetson: the Jetson onnxruntime-gpu wheel)")
    from edge_agent.core.detector.backends.onnxruntime import ORT_NAMES

    available = ort.get_available_providers()
    text = f"{ort.__version__}: providers {', '.join(available)}"
    missing = [p for p in runtime.providers if p != "auto" and ORT_NAMES[p] not in available]
    if missing:
        return warn("onnxruntime", f"{text}; detector.providers asks for {', '.join(missing)} "
                    "which this build lacks (skipped at start)",
                    "install onnxruntime-gpu (one onnxruntime package only), or change "
                    "detector.providers")
    if jetson and available == ["CPUExecutionProvider"]:
        return warn("onnxruntime", f"{text}: CPU only on a Jetson",
                    "install the Jetson onnxruntime-gpu wheel (scripts/install_jetson.sh "
                    "tries it), or use detector.backend: tensorrt")
    return ok("onnxruntime", text)


def _missing(name: str, exc: Exception, required: bool, why: str, jetson: bool, fix: str
             ) -> Check:
    if required:
        return fail(name, f"not importable ({exc}); {why}", fix)
    if jetson:
        return warn(name, f"not importable ({exc}): the agent runs on ONNX Runtime", fix)
    return skip(name, f"not installed ({exc.__class__.__name__}); not needed by this config")


def check_tensorrt(required: bool, why: str, jetson: bool) -> tuple[Check, object | None]:
    try:
        import tensorrt as trt
    except ImportError as exc:
        fix = ("on a Jetson: apt-get install python3-libnvinfer, seen through a "
               "--system-site-packages venv; on x86: pip install '.[tensorrt]'; or set "
               "detector.backend: onnxruntime")
        return _missing("tensorrt", exc, required, why, jetson, fix), None
    version = trt.__version__
    major_minor = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    if major_minor < (8, 5):
        check = (fail if required else warn)(
            "tensorrt", f"TensorRT {version} is older than 8.5 (no name-based API); "
            f"supported: {SUPPORTED_VERSIONS}", "upgrade to JetPack 6 (TensorRT 8.6 or 10)")
        return check, None
    where = f"TensorRT {version} ({Path(trt.__file__).parent})"
    if major_minor >= (11, 0):
        return warn("tensorrt", f"{where}: strongly typed networks only, so INT8 (Q/DQ) and "
                    f"FP32 engines, no FP16 from an FP32 model; supported: "
                    f"{SUPPORTED_VERSIONS}", "for FP16, use TensorRT 10 or an FP16 ONNX "
                    "model"), trt
    return ok("tensorrt", f"{where}; supported: {SUPPORTED_VERSIONS}"), trt


def check_pycuda(required: bool, why: str, jetson: bool) -> tuple[Check, object | None]:
    try:
        import pycuda
        import pycuda.driver as cuda
    except ImportError as exc:
        fix = ("pip install pycuda in the agent's venv (needs python3-dev and the CUDA "
               "toolkit on PATH: export PATH=/usr/local/cuda/bin:$PATH)")
        return _missing("pycuda", exc, required, why, jetson, fix), None
    return ok("pycuda", f"pycuda {pycuda.VERSION_TEXT}"), cuda


def fast_precisions(builder, capability: tuple[int, int]) -> tuple[bool, bool]:
    """(fast FP16, fast INT8): the builder's answer where this TensorRT still gives one,
    otherwise from the compute capability (Nano sm_53 and TX2 sm_62 have no fast INT8)."""
    fp16 = getattr(builder, "platform_has_fast_fp16", None)
    int8 = getattr(builder, "platform_has_fast_int8", None)
    if fp16 is None:
        fp16 = capability in ((5, 3), (6, 0), (6, 2)) or capability >= (7, 0)
    if int8 is None:
        int8 = capability >= (6, 1) and capability != (6, 2)
    return bool(fp16), bool(int8)


def check_gpu(trt, cuda, precision: str, required: bool) -> Check:
    if trt is None or cuda is None:
        return skip("gpu", "needs TensorRT and pycuda to be queried")
    verdict = fail if required else warn
    try:
        cuda.init()
        count = cuda.Device.count()
    except Exception as exc:  # pycuda raises its own errors for a missing driver
        return verdict("gpu", f"CUDA does not start ({exc})",
                       "is the NVIDIA driver loaded, and is this user in the video group?")
    if count == 0:
        return verdict("gpu", "no CUDA device", "check the driver (nvidia-smi or tegrastats)")
    dev = cuda.Device(0)
    capability = dev.compute_capability()
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    fp16, int8 = fast_precisions(builder, capability)
    text = (f"{dev.name()} sm_{capability[0]}{capability[1]}: FP16 {'yes' if fp16 else 'no'}, "
            f"INT8 {'yes' if int8 else 'no'}")
    if precision == "int8" and not int8:
        return warn("gpu", f"{text}: detector.precision int8 cannot run here",
                    "set detector.precision: fp16 and model.path to the FP32 model")
    return ok("gpu", text)
