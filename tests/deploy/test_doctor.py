"""`edge-agent doctor` and `cloud-fallback doctor` on this machine, with good and broken
configs against real brokers, Redis, the bundled models and real camera sources."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_kit import (
    DYNSEC_PLUGIN,
    MOSQUITTO_CONFIGS,
    accounts,
    broker_from,
    dynsec_plugin,
    make_certs,
    password_file,
)
from servers import free_port

from edge_agent.cli import main as edge_main
from edge_agent.core.config.common import RuntimeConfig
from edge_agent.core.detector.backends.tensorrt import EngineKey, file_sha256
from edge_agent.core.doctor.model import check_engine_cache
from edge_agent.core.doctor.platform import build_flag, l4t_release
from edge_agent.core.doctor.report import EXIT_FAILED, EXIT_HEALTHY

pytestmark = pytest.mark.integration

SYNTHETIC = "synthetic://?seed=3&fps=15"


def edge_config(tmp_path: Path, port: int, *, cameras=(("street", SYNTHETIC),), extra="",
                mqtt="") -> Path:
    cams = "".join(f"  - name: {n}\n    url: \"{u}\"\n    open_timeout_s: 3\n" for n, u in cameras)
    path = tmp_path / "edge.yaml"
    path.write_text(f"device_id: dev-a\ncameras:\n{cams}{extra}"
                    f"mqtt:\n  host: localhost\n  port: {port}\n{mqtt}")
    return path


def doctor(capsys, *args: str) -> tuple[int, dict[str, dict]]:
    """Run the doctor as `edge-agent doctor --json ...`; (exit code, checks by name)."""
    code = edge_main(["doctor", "--json", "--timeout", "5", *args])
    out = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in out["checks"]}


def test_a_good_config_is_ready(mosquitto, tmp_path, capsys):
    code, checks = doctor(capsys, "--config", str(edge_config(tmp_path, mosquitto.port)))
    assert code == EXIT_HEALTHY
    for name in ("config", "python", "opencv", "onnxruntime", "broker", "camera street"):
        assert checks[name]["verdict"] == "ok", checks[name]
    assert "on a frame of camera street" in checks["model"]["detail"]
    # the bundled synthetic-world model finds objects on a blank frame: worth a warning
    assert checks["model"]["verdict"] == "warn"
    assert "blank grey frame" in checks["model"]["detail"]
    assert re.search(r"\d+x\d+ frame in", checks["camera street"]["detail"])
    # no TensorRT here and the config does not ask for it: not a failure
    assert checks["tensorrt"]["verdict"] in ("skip", "ok")


def test_the_text_report_has_one_line_per_check_and_a_verdict(mosquitto, tmp_path):
    config = edge_config(tmp_path, mosquitto.port)
    done = subprocess.run([sys.executable, "-m", "edge_agent", "doctor", "--config",
                           str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("ok    config")
    assert any(line.startswith("ok    broker") and "connected" in line for line in lines)
    assert lines[-1].startswith("doctor: ready")


def test_no_broker(tmp_path, capsys):
    code, checks = doctor(capsys, "--config", str(edge_config(tmp_path, free_port())))
    assert code == EXIT_FAILED
    assert checks["broker"]["verdict"] == "FAIL"
    assert "unreachable" in checks["broker"]["detail"]
    assert "is the broker running" in checks["broker"]["fix"]
    assert checks["model"]["verdict"] == "warn"  # checked (it invents objects on a blank frame)


def test_wrong_password_is_told_apart_from_no_broker(tmp_path, capsys):
    passwords = password_file(tmp_path / "passwd", {"dev-a": "right-pw"})
    broker = broker_from(MOSQUITTO_CONFIGS / "mosquitto.conf", tmp_path / "broker", {
        "allow_anonymous true": f"allow_anonymous false\npassword_file {passwords}"}).start()
    try:
        secret = tmp_path / "pw.txt"
        secret.write_text("wrong-pw\n")
        mqtt = f"  username: dev-a\n  password_file: {secret}\n"
        code, checks = doctor(capsys, "--config", str(edge_config(tmp_path, broker.port,
                                                                   mqtt=mqtt)))
        assert code == EXIT_FAILED
        assert checks["broker"]["verdict"] == "FAIL"
        assert "bad username or password" in checks["broker"]["detail"]
        assert "wrong-pw" not in json.dumps(checks)
        secret.write_text("right-pw\n")
        code, checks = doctor(capsys, "--config", str(edge_config(tmp_path, broker.port,
                                                                   mqtt=mqtt)))
        assert code == EXIT_HEALTHY, checks["broker"]
        assert checks["broker"]["verdict"] == "ok"
        anonymous = edge_config(tmp_path, broker.port)
        code, checks = doctor(capsys, "--config", str(anonymous))
        assert code == EXIT_FAILED and "wants a username" in checks["broker"]["detail"]
    finally:
        broker.stop()


def test_tls_without_the_ca_and_without_tls(tmp_path, capsys):
    """The shipped TLS config and broker accounts: the device's account is bound to the
    agent's client id, so the doctor's own id is refused and the check is made as the agent
    (told apart from a wrong password only that way)."""
    certs = make_certs(tmp_path / "certs", "localhost")
    security = tmp_path / "security"
    accounts(security / "dynamic-security.json", {"dev-a": "pw-a"})
    (tmp_path / "data").mkdir()
    broker = broker_from(MOSQUITTO_CONFIGS / "mosquitto-tls.conf", tmp_path / "broker", {
        "/mosquitto/certs/": f"{certs}/", DYNSEC_PLUGIN: dynsec_plugin(),
        "/mosquitto/security/": f"{security}/",
        "/mosquitto/data/": f"{tmp_path / 'data'}/"}).start()
    auth = "  username: dev-a\n  password: pw-a\n"
    try:
        with_ca = auth + f"  tls:\n    enabled: true\n    ca_file: {certs / 'ca.crt'}\n"
        code, checks = doctor(capsys, "--config",
                              str(edge_config(tmp_path, broker.port, mqtt=with_ca)))
        assert code == EXIT_HEALTHY and "TLS" in checks["broker"]["detail"]
        assert "as the client id osprey-dev-a, which the broker binds" in checks["broker"]["detail"]
        wrong = with_ca.replace("pw-a", "not-it")
        code, checks = doctor(capsys, "--config",
                              str(edge_config(tmp_path, broker.port, mqtt=wrong)))
        assert code == EXIT_FAILED
        assert "bad username or password, or this account is bound to a client id other " \
            "than osprey-" in checks["broker"]["detail"]
        assert "broker_accounts.py" in checks["broker"]["fix"]
        no_ca = auth + "  tls:\n    enabled: true\n"
        code, checks = doctor(capsys, "--config",
                              str(edge_config(tmp_path, broker.port, mqtt=no_ca)))
        assert code == EXIT_FAILED
        assert "certificate is not trusted" in checks["broker"]["detail"]
        assert "ca_file" in checks["broker"]["fix"]
        code, checks = doctor(capsys, "--config",
                              str(edge_config(tmp_path, broker.port, mqtt=auth)))
        assert code == EXIT_FAILED
        assert "no answer to CONNECT" in checks["broker"]["detail"]
        assert "TLS" in checks["broker"]["fix"]
    finally:
        broker.stop()


def test_missing_model(mosquitto, tmp_path, capsys):
    extra = f"model:\n  path: {tmp_path / 'nope.onnx'}\n"
    code, checks = doctor(capsys, "--config", str(edge_config(tmp_path, mosquitto.port,
                                                               extra=extra)))
    assert code == EXIT_FAILED
    assert checks["model"]["verdict"] == "FAIL"
    assert "nope.onnx not found" in checks["model"]["detail"]
    assert checks["broker"]["verdict"] == "ok"


def test_a_broken_model_file(mosquitto, tmp_path, capsys):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    code, checks = doctor(capsys, "--config", str(edge_config(
        tmp_path, mosquitto.port, extra=f"model:\n  path: {bad}\n")))
    assert code == EXIT_FAILED
    assert "is not a usable ONNX model" in checks["model"]["detail"]
    assert "copy or export it again" in checks["model"]["detail"]


def test_cameras_that_do_not_open(mosquitto, tmp_path, capsys):
    cameras = (("street", SYNTHETIC), ("gone", str(tmp_path / "missing.mp4")),
               ("refused", f"rtsp://127.0.0.1:{free_port()}/stream"))
    code, checks = doctor(capsys, "--config", str(edge_config(tmp_path, mosquitto.port,
                                                               cameras=cameras)))
    assert code == EXIT_FAILED
    assert checks["camera street"]["verdict"] == "ok"
    assert checks["camera gone"]["verdict"] == "FAIL"
    assert "not found" in checks["camera gone"]["detail"]
    assert checks["camera refused"]["verdict"] == "FAIL"
    assert "cannot open" in checks["camera refused"]["detail"]


def test_an_invalid_config(tmp_path, capsys):
    path = tmp_path / "edge.yaml"
    path.write_text("cameras: []\nmqtt:\n  hots: x\n")
    code, checks = doctor(capsys, "--config", str(path))
    assert code == EXIT_FAILED
    assert checks["config"]["verdict"] == "FAIL"
    assert "mqtt.hots" in checks["config"]["detail"]
    assert "validate-config" in checks["config"]["fix"]
    assert checks["model"]["verdict"] == "warn"  # the machine is still checked
    assert "blank grey frame" in checks["model"]["detail"]


def test_tensorrt_asked_for_but_absent_fails(mosquitto, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    if _importable("tensorrt"):
        pytest.skip("TensorRT is installed here")
    extra = f"detector:\n  backend: tensorrt\n  engine_cache_dir: {tmp_path / 'engines'}\n"
    code, checks = doctor(capsys, "--config", str(edge_config(tmp_path, mosquitto.port,
                                                               extra=extra)))
    assert code == EXIT_FAILED
    assert checks["tensorrt"]["verdict"] == "FAIL"
    assert "detector.backend is tensorrt" in checks["tensorrt"]["detail"]
    assert checks["gpu"]["verdict"] == "skip"
    assert checks["engine cache"]["verdict"] == "warn"  # not made yet; the first start makes it


def test_a_gstreamer_camera_needs_an_opencv_with_gstreamer(mosquitto, tmp_path, capsys):
    import cv2

    if build_flag(cv2.getBuildInformation(), "GStreamer"):
        pytest.skip("this OpenCV has GStreamer")
    cameras = (("csi", "gst://nvarguscamerasrc ! appsink"),)
    code, checks = doctor(capsys, "--config", str(edge_config(tmp_path, mosquitto.port,
                                                               cameras=cameras)))
    assert code == EXIT_FAILED
    assert checks["opencv"]["verdict"] == "FAIL"
    assert "GStreamer" in checks["opencv"]["detail"]


def test_engine_cache_states(tmp_path):
    model = Path(__file__).resolve().parents[2] / "models/edge/osprey_edge_ssdlite.onnx"
    cache = tmp_path / "engines"
    runtime = RuntimeConfig(backend="tensorrt", engine_cache_dir=cache)
    check = check_engine_cache(runtime, model, uses_tensorrt=True, trt_version="10.3.0")
    assert check.verdict == "warn" and "does not exist yet" in check.detail
    cache.mkdir()
    old = EngineKey(file_sha256(model), "8.6.2", "fp16", "Orin sm_87")
    path = old.engine_path(cache, model)
    path.write_bytes(b"engine")
    path.with_suffix(".json").write_text(json.dumps(old.__dict__))
    check = check_engine_cache(runtime, model, uses_tensorrt=True, trt_version="10.3.0",
                               gpu="Orin sm_87")
    assert check.verdict == "warn" and "built by TensorRT 8.6.2" in check.detail
    assert "build-engine" in check.fix
    check = check_engine_cache(runtime, model, uses_tensorrt=True, trt_version="8.6.2",
                               gpu="Orin sm_87")
    assert check.verdict == "ok" and "ready" in check.detail
    other = tmp_path / "other.onnx"
    other.write_bytes(b"another model")
    check = check_engine_cache(runtime, other, uses_tensorrt=True, trt_version="8.6.2")
    assert check.verdict == "warn" and "none for other.onnx" in check.detail
    cache.chmod(0o500)
    try:
        check = check_engine_cache(runtime, model, uses_tensorrt=True, trt_version="8.6.2")
        if check.verdict != "ok":  # root writes anywhere
            assert check.verdict == "FAIL" and "not writable" in check.detail
    finally:
        cache.chmod(0o700)


def test_jetson_release_file(tmp_path):
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, "
                       "EABI: aarch64, DATE: Mon May  6 17:34:21 UTC 2024\n")
    assert l4t_release(release) == "36.3"
    assert l4t_release(tmp_path / "absent") is None


@pytest.fixture
def cloud_config(tmp_path, mosquitto):
    def make(redis_url: str | None, text: str = "") -> Path:
        path = tmp_path / "cloud.yaml"
        redis = f"cache:\n  redis_url: {redis_url}\n" if redis_url else ""
        path.write_text(f"mqtt:\n  host: localhost\n  port: {mosquitto.port}\n{redis}"
                        f"model:\n  tiles: null\n{text}")
        return path
    return make


def test_cloud_doctor_with_redis(cloud_config, redis):
    code, checks = _cloud(cloud_config(f"redis://127.0.0.1:{redis.port}/0"))
    assert code == EXIT_HEALTHY, checks
    assert [checks[n]["verdict"] for n in ("config", "text model", "broker",
                                           "redis")] == ["ok"] * 4
    assert "osprey_cloud_ssdlite" in checks["model"]["detail"]
    assert checks["model"]["verdict"] == "warn"  # the synthetic-world model, on a blank frame
    assert "osprey-textimage" in checks["text model"]["detail"]


def test_cloud_doctor_text_model_missing(cloud_config, tmp_path):
    code, checks = _cloud(cloud_config(None, f"  text:\n    path: {tmp_path / 'nope'}\n"))
    assert code == EXIT_FAILED
    assert checks["text model"]["verdict"] == "FAIL"
    assert "does not exist" in checks["text model"]["detail"]


def test_cloud_doctor_checks_every_detector_of_the_full_model(cloud_config, tmp_path):
    from edge_agent.core.bundled import bundled_cloud_model

    text = (f"  merge: wbf\n  flip: true\n  extra_detectors:\n"
            f"    - path: {bundled_cloud_model()}\n    - path: {tmp_path / 'gone.onnx'}\n")
    code, checks = _cloud(cloud_config(None, text))
    assert code == EXIT_FAILED
    assert checks["fusion"]["verdict"] == "ok"
    assert checks["extra detector 1"]["verdict"] in ("ok", "warn")
    assert checks["extra detector 2"]["verdict"] == "FAIL"
    assert "gone.onnx not found" in checks["extra detector 2"]["detail"]


def test_cloud_doctor_redis_down(cloud_config):
    code, checks = _cloud(cloud_config(f"redis://127.0.0.1:{free_port()}/0"))
    assert code == EXIT_FAILED
    assert checks["redis"]["verdict"] == "FAIL" and "unreachable" in checks["redis"]["detail"]


def test_cloud_doctor_bad_config(tmp_path):
    path = tmp_path / "cloud.yaml"
    path.write_text("mqtt:\n  port: 1883\n")
    code, checks = _cloud(path)
    assert code == EXIT_FAILED
    assert checks["config"]["verdict"] == "FAIL" and "mqtt.host" in checks["config"]["detail"]


def _cloud(config: Path) -> tuple[int, dict[str, dict]]:
    done = subprocess.run([sys.executable, "-m", "cloud_fallback", "doctor", "--json",
                           "--timeout", "5", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout, done.stderr
    return done.returncode, {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def test_a_camera_that_never_answers_is_bounded_by_the_timeout(mosquitto, tmp_path, capsys):
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/stream"
        config = edge_config(tmp_path, mosquitto.port, cameras=(("mute", url),))
        code = edge_main(["doctor", "--json", "--timeout", "1", "--config", str(config)])
        checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == EXIT_FAILED
    assert checks["camera mute"]["detail"].endswith("no frame within 1 s")
    # an RTSP camera: the real-camera model, checked on a blank frame since no camera gave
    # one, where it finds nothing
    assert checks["model"]["verdict"] == "ok"
    assert "osprey_edge_real" in checks["model"]["detail"]
    assert "on a blank frame" in checks["model"]["detail"]


def test_engine_cache_reports_a_failed_tensorrt_build_and_the_fallback(tmp_path):
    """A model TensorRT failed to build (EngineBuildError's marker): the doctor says the agent
    runs it on ONNX Runtime and how to retry."""
    model = tmp_path / "det.onnx"
    model.write_bytes(b"a model")
    cache = tmp_path / "engines"
    cache.mkdir()
    runtime = RuntimeConfig(backend="tensorrt", engine_cache_dir=cache)
    key = EngineKey(file_sha256(model), "10.3.0", "fp16", "Orin sm_87")
    key.engine_path(cache, model).with_suffix(".failed.json").write_text(json.dumps(
        {**key.__dict__, "reason": "TensorRT cannot parse det.onnx: DequantizeLinear"}))
    check = check_engine_cache(runtime, model, uses_tensorrt=True, trt_version="10.3.0")
    assert check.verdict == "warn"
    assert "ONNX Runtime" in check.detail and "cannot parse" in check.detail
    assert "failed.json" in check.fix


def test_engine_cache_fails_a_qdq_model_tensorrts_parser_refuses(tmp_path):
    """The INT8 file as it was shipped before biases stayed float: DequantizeLinear of INT32
    biases, which TensorRT's parser refuses."""
    pytest.importorskip("onnx", reason="the Q/DQ check reads the graph with `onnx`")
    from qdq_graphs import conv_qdq

    model = conv_qdq(tmp_path / "int8.onnx", bias_int32=True)
    runtime = RuntimeConfig(backend="tensorrt", engine_cache_dir=tmp_path / "engines")
    check = check_engine_cache(runtime, model, uses_tensorrt=True, trt_version="10.3.0")
    assert check.verdict == "FAIL" and "INT32 bias" in check.detail
    assert "edge-agent quantize" in check.fix


def test_a_model_that_sees_nothing_on_a_blank_frame_is_ok(real_data):
    """The real COCO YOLOX-nano finds nothing on a blank frame and says no domain: ok; the
    bundled synthetic-world model finds objects there: a warning that says so."""
    from edge_agent.core.bundled import bundled_edge_model
    from edge_agent.core.config.common import DetectorModelConfig
    from edge_agent.core.doctor.model import check_model

    runtime = RuntimeConfig(providers=["cpu"])
    yolox = real_data / "yolox_nano_416.onnx"
    good = check_model(DetectorModelConfig(path=yolox), runtime, yolox, None, "")
    assert good.verdict == "ok" and "0 detection(s) on a blank frame" in good.detail
    bundled = bundled_edge_model()
    bad = check_model(DetectorModelConfig(path=bundled), runtime, bundled, None, "")
    assert bad.verdict == "warn" and "invents objects" in bad.detail
