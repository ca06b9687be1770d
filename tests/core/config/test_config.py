"""Config files: examples validate, broken ones say file, line, key path, value and fix."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_fallback.cli import main as cloud_main
from cloud_fallback.config import load_cloud_config
from edge_agent.cli import main as edge_main
from edge_agent.core.errors import ConfigError
from edge_agent.runtime.config import load_edge_config

REPO = Path(__file__).resolve().parents[3]

GOOD_CAMERA = "cameras:\n  - name: front\n    url: synthetic://?seed=1\n"


@pytest.mark.parametrize("name", ["edge.yaml", "demo.yaml"])
def test_example_edge_configs_validate(name):
    config = load_edge_config(REPO / "configs" / name, environ={})
    assert config.cameras


def test_example_cloud_config_validates():
    config = load_cloud_config(REPO / "configs" / "cloud.yaml", environ={})
    assert config.cache.redis_url.startswith("redis://")


@pytest.mark.parametrize("cli,name", [(edge_main, "edge.yaml"), (edge_main, "demo.yaml"),
                                      (cloud_main, "cloud.yaml")])
def test_validate_config_command_exits_zero_on_examples(cli, name, capsys):
    assert cli(["validate-config", str(REPO / "configs" / name)]) == 0
    assert "OK" in capsys.readouterr().out


# (yaml text, line, key path, shown value, words of the fix)
BROKEN = [
    pytest.param(GOOD_CAMERA + "mqtt:\n  port: 70000\n", 5, "mqtt.port", "70000",
                 "less than or equal to 65535", id="port-range"),
    pytest.param(GOOD_CAMERA + "mqtt:\n  port: abc\n", 5, "mqtt.port", "'abc'",
                 "valid integer", id="port-type"),
    pytest.param(GOOD_CAMERA + "mqtt:\n  hots: broker\n", 5, "mqtt.hots", "'broker'",
                 "did you mean 'host'", id="unknown-key"),
    pytest.param("cameras:\n  - name: front\n    url: rstp://cam/1\n", 3, "cameras[0].url",
                 "'rstp://cam/1'", "valid: rtsp://", id="bad-scheme"),
    pytest.param("cameras:\n  - name: front\n    url: synthetic://\n    detect_fps: -3\n", 4,
                 "cameras[0].detect_fps", "-3", "greater than 0", id="negative-fps"),
    pytest.param("cameras:\n  - name: front/door\n    url: synthetic://\n", 2,
                 "cameras[0].name", "'front/door'", "part of MQTT topics", id="topic-unsafe"),
    pytest.param("cameras: []\n", 1, "cameras", "[]", "at least 1 item", id="no-cameras"),
    pytest.param("device_id: edge\n", None, "cameras", None, "required key is missing",
                 id="missing-cameras"),
    pytest.param(GOOD_CAMERA + "detector:\n  backend: tensorflow\n", 5, "detector.backend",
                 "'tensorflow'", "'onnxruntime' or 'tensorrt'", id="bad-backend"),
    pytest.param(GOOD_CAMERA + "window:\n  size: 4\n  stride: 8\n", 4, "window", None,
                 "stride 8 is larger than size 4", id="stride-gt-size"),
    pytest.param(GOOD_CAMERA + "offload:\n  uncertain_band: [0.7, 0.2]\n", 5,
                 "offload.uncertain_band", "[0.7, 0.2]", "0 <= low < high <= 1", id="band"),
    pytest.param(GOOD_CAMERA + "model:\n  layout: yolo9000\n", 5, "model.layout",
                 "'yolo9000'", "'ssd'", id="bad-layout"),
    pytest.param(GOOD_CAMERA + "model:\n  path: model.pt\n", 5, "model.path", "'model.pt'",
                 "must be an ONNX model", id="model-suffix"),
    pytest.param(GOOD_CAMERA + "mqtt:\n  tls:\n    enabled: true\n    ca_file: /nope/ca.crt\n",
                 7, "mqtt.tls.ca_file", "'/nope/ca.crt'", "does not exist", id="tls-file"),
    pytest.param(GOOD_CAMERA + "mqtt:\n  password: s3cret-pass\n", 4, "mqtt", None,
                 "a password needs a username", id="password-no-user"),
    pytest.param(GOOD_CAMERA + "detector:\n  providers: [auto, cuda]\n", 5,
                 "detector.providers", "['auto', 'cuda']", "'auto' stands alone",
                 id="providers"),
    pytest.param("cameras:\n  - name: a\n    url: synthetic://\n  - name: a\n"
                 "    url: synthetic://\n", None, "(top level)", None,
                 "repeated: a", id="duplicate-cameras"),
    pytest.param(GOOD_CAMERA + "logging:\n  level: LOUD\n", 5, "logging.level", "'LOUD'",
                 "'DEBUG', 'INFO', 'WARNING' or 'ERROR'", id="log-level"),
]


@pytest.mark.parametrize("text,line,path,value,fix", BROKEN)
def test_broken_config_names_file_line_path_value_and_fix(tmp_path, capsys, text, line, path,
                                                          value, fix):
    file = tmp_path / "edge.yaml"
    file.write_text(text)
    assert edge_main(["validate-config", str(file)]) == 1
    err = capsys.readouterr().err
    where = f"{file}:{line}" if line else str(file)
    problem = next((ln for ln in err.splitlines() if f" {path}" in ln and fix in ln), None)
    assert problem is not None, err
    assert where in problem
    if value is not None:
        assert f"{path} = {value}" in problem


def test_yaml_syntax_error_gives_line_and_column(tmp_path, capsys):
    file = tmp_path / "edge.yaml"
    file.write_text(GOOD_CAMERA + "mqtt: {host: [unclosed\n")
    assert edge_main(["validate-config", str(file)]) == 1
    err = capsys.readouterr().err
    assert f"{file}:5:" in err and "not valid YAML" in err


def test_missing_file_and_non_mapping(tmp_path, capsys):
    assert edge_main(["validate-config", str(tmp_path / "nope.yaml")]) == 1
    assert "no such file" in capsys.readouterr().err
    file = tmp_path / "list.yaml"
    file.write_text("- a\n- b\n")
    assert edge_main(["validate-config", str(file)]) == 1
    assert "top level must be a mapping" in capsys.readouterr().err


def test_cloud_config_errors_too(tmp_path, capsys):
    file = tmp_path / "cloud.yaml"
    file.write_text("mqtt:\n  host: b\ncache:\n  redis_url: http://x\n")
    assert cloud_main(["validate-config", str(file)]) == 1
    err = capsys.readouterr().err
    assert f"{file}:4: cache.redis_url = 'http://x'" in err and "redis://" in err


def test_validate_config_is_a_real_command(tmp_path):
    file = tmp_path / "edge.yaml"
    file.write_text(GOOD_CAMERA + "mqtt:\n  port: 0\n")
    done = subprocess.run([sys.executable, "-m", "edge_agent", "validate-config", str(file)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "mqtt.port = 0" in done.stderr and "greater than or equal to 1" in done.stderr


def test_env_variables_fill_placeholders_and_override_keys(tmp_path):
    file = tmp_path / "edge.yaml"
    file.write_text("cameras:\n  - name: gate\n    url: rtsp://u:${CAM_PW}@h/s\n"
                    "mqtt:\n  host: b\n  username: dev\n")
    env = {"CAM_PW": "pw-from-env", "OSPREY_EDGE__MQTT__PASSWORD": "mqtt-secret",
           "OSPREY_EDGE__MQTT__PORT": "8883", "OSPREY_EDGE__CAMERAS__0__DETECT_FPS": "5"}
    config = load_edge_config(file, environ=env)
    assert config.cameras[0].url == "rtsp://u:pw-from-env@h/s"
    assert config.cameras[0].detect_fps == 5
    assert config.mqtt.port == 8883
    assert config.mqtt.resolved_password() == "mqtt-secret"


def test_unset_variable_and_bad_override_are_named(tmp_path):
    file = tmp_path / "edge.yaml"
    file.write_text("cameras:\n  - name: gate\n    url: rtsp://u:${CAM_PW}@h/s\n")
    with pytest.raises(ConfigError, match=r"edge.yaml:3: cameras\[0\].url: environment "
                                          r"variable CAM_PW is not set"):
        load_edge_config(file, environ={})
    file.write_text(GOOD_CAMERA)
    with pytest.raises(ConfigError, match=r"env OSPREY_EDGE__MQTT__PORT: mqtt.port = 'x'"):
        load_edge_config(file, environ={"OSPREY_EDGE__MQTT__PORT": "x"})
    with pytest.raises(ConfigError, match=r"env OSPREY_EDGE__CAMERAS__3__URL.*does not fit"):
        load_edge_config(file, environ={"OSPREY_EDGE__CAMERAS__3__URL": "x"})


def test_password_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    file = tmp_path / "edge.yaml"
    file.write_text(GOOD_CAMERA + f"mqtt:\n  username: u\n  password_file: {secret}\n")
    assert load_edge_config(file, environ={}).mqtt.resolved_password() == "from-file"


def test_secrets_never_printed(tmp_path, capsys, caplog):
    file = tmp_path / "edge.yaml"
    file.write_text("cameras:\n  - name: gate\n    url: rtsp://admin:hunter22@cam/s\n"
                    "mqtt:\n  username: u\n  password: topsecret-1\n  port: -1\n")
    assert edge_main(["validate-config", str(file)]) == 1
    err = capsys.readouterr().err
    assert "topsecret-1" not in err and "hunter22" not in err
    file.write_text("cameras:\n  - name: gate\n    url: rtsp://admin:hunter22@cam/s\n"
                    "mqtt:\n  username: u\n  password: topsecret-1\n")
    assert edge_main(["validate-config", "--print", str(file)]) == 0
    out = capsys.readouterr().out
    assert "topsecret-1" not in out and "hunter22" not in out and "admin:***@cam" in out
    load_edge_config(file, environ={})
    logging.getLogger("osprey.test").warning("connecting with %s", "topsecret-1")
    handler_text = logging.getLogger().handlers[0].format(caplog.records[-1])
    assert "topsecret-1" not in handler_text


@pytest.mark.parametrize("queries, says", [
    (["red car", "  "], r"cameras\[0\].text_queries = .*text query 1 is blank"),
    (["red car", "Red  Car"], r"text query 'Red Car' is given twice"),
    (["x" * 300], r"text query 0 has 300 characters, at most 256"),
    ([f"car {i}" for i in range(33)], r"text_queries = .*at most 32 items"),
])
def test_text_queries_within_what_a_request_can_carry(tmp_path, queries, says):
    """A camera whose queries the offload protocol would refuse would lose every cloud
    answer: the config says so when it loads instead."""
    import yaml

    file = tmp_path / "edge.yaml"
    file.write_text(yaml.safe_dump({"cameras": [{"name": "c", "url": "synthetic://",
                                                 "text_queries": queries}]}))
    with pytest.raises(ConfigError, match=says):
        load_edge_config(file, environ={})


def test_text_queries_are_tidied(tmp_path):
    file = tmp_path / "edge.yaml"
    file.write_text("cameras:\n  - name: c\n    url: synthetic://\n"
                    "    text_queries: ['  red   car ', 'yellow dog']\n")
    assert load_edge_config(file, environ={}).cameras[0].text_queries == ["red car",
                                                                          "yellow dog"]
