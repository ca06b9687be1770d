"""The layering: the core imports neither side, the runtime never imports the tools or the
cloud, the cloud imports only the core (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_FOR_RUNTIME = ("edge_agent.tools", "edge_agent.cli", "edge_agent.doctor",
                         "cloud_fallback", "models")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed: pip install -e '.[dev]'")
    return subprocess.run([exe, "--config", "pyproject.toml", "--no-cache"], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)})


def _copy_tree(dst: Path) -> Path:
    ignore = shutil.ignore_patterns("*.onnx", "__pycache__", "*.json", "*.md")
    for pkg in ("edge_agent", "cloud_fallback", "models"):
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_the_contracts_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("edge_agent/runtime/pipeline/post.py", "import edge_agent.tools.sim",
     "The runtime imports no tools"),
    ("edge_agent/runtime/offload/client.py", "import cloud_fallback.recipe",
     "The runtime imports no tools, no simulator and no cloud"),
    ("edge_agent/core/protocol.py", "import edge_agent.runtime.config",
     "The core imports neither"),
    ("cloud_fallback/worker.py", "import edge_agent.runtime.offload.answer",
     "The cloud worker imports only the core"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract):
    """Given a copy of the packages with one forbidden import added (inside a function, where
    a lazy import would hide), lint-imports fails and names the contract."""
    tree = _copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n\ndef _sneaky():\n    {line}\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout


def test_the_runtime_pipeline_loads_no_tools_simulator_or_cloud():
    code = ("import json, sys\nimport edge_agent.runtime.pipeline\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    loaded = json.loads(out)
    assert "edge_agent.runtime.pipeline.agent" in loaded
    bad = [m for m in loaded if m.startswith(FORBIDDEN_FOR_RUNTIME)]
    assert bad == []


def test_a_synthetic_camera_loads_the_simulator_only_when_asked_for():
    code = ("import json, sys\nfrom edge_agent.runtime.capture.opencv import open_source\n"
            "before = 'edge_agent.tools.sim' in sys.modules\n"
            "src = open_source('cam', 'synthetic://?seed=1&seconds=1', realtime=False)\n"
            "frame = src.read()\n"
            "print(json.dumps([before, 'edge_agent.tools.sim' in sys.modules, "
            "frame.image.shape[1]]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert json.loads(out) == [False, True, 640]
