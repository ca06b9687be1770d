"""Packaging: the Jetson requirements track the base dependencies, minus what JetPack ships."""

from __future__ import annotations

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
FROM_JETPACK = {"opencv-python-headless", "onnxruntime"}


def names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r.strip(), maxsplit=1)[0].lower() for r in reqs}


def test_jetson_requirements_are_the_base_minus_jetpack_parts():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = names(project["dependencies"])
    jetson = names([ln for ln in (REPO / "requirements/jetson.txt").read_text().splitlines()
                    if ln.strip() and not ln.startswith("#")])
    assert base >= FROM_JETPACK
    assert jetson == base - FROM_JETPACK


def test_edge_base_install_has_no_heavy_parts():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = names(project["dependencies"])
    assert not base & {"torch", "tensorrt", "pycuda", "onnxruntime-gpu", "redis", "onnx"}
    extras = project["optional-dependencies"]
    assert {"gpu", "tensorrt", "train", "cloud", "dev"} <= set(extras)
    assert "torch" in names(extras["train"]) and "redis" in names(extras["cloud"])


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = re.search(r"<!-- test-command -->\s*```bash\n(.+?)\n```", readme, re.S)
    assert command, "README.md must hold the test command after <!-- test-command -->"
    assert command.group(1).strip() in ci


def test_readme_run_command_installs_the_demo_and_runs_it():
    """The README's one-command start: the `demo` extra (embedded broker, cloud worker) and
    `edge-agent demo` (tests/cli/test_run_cli.py runs the demo itself)."""
    readme = (REPO / "README.md").read_text()
    command = re.search(r"<!-- run-command -->\s*```bash\n(.+?)\n```", readme, re.S)
    assert command, "README.md must hold the run command after <!-- run-command -->"
    install, run = command.group(1).split(" && ")
    assert '".[demo]"' in install and run.strip() == "edge-agent demo"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert "amqtt" in names(extras["demo"])
    # the demo runs a cloud worker too: what it imports with the bundled models
    assert {"cachetools", "tokenizers"} <= names(extras["demo"])


def generator(script: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", REPO / "scripts" / script)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


def test_configuration_reference_is_up_to_date():
    gen = generator("gen_config_docs.py")
    assert (REPO / "docs" / "configuration.md").read_text() == gen.render(), \
        "docs/configuration.md is stale: run python scripts/gen_config_docs.py"


def test_mqtt_api_doc_is_up_to_date():
    gen = generator("gen_mqtt_docs.py")
    assert (REPO / "docs" / "mqtt-api.md").read_text() == gen.render(), \
        "docs/mqtt-api.md is stale: run python scripts/gen_mqtt_docs.py"
