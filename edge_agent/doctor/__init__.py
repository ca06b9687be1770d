"""`doctor`: checks of this machine, the model, the broker and the cameras, one line each with
a verdict and a fix. Shared by `edge-agent doctor` and `cloud-fallback doctor`."""

from edge_agent.doctor.edge import edge_checks
from edge_agent.doctor.report import Check, exit_code, render_json, render_text

__all__ = ["Check", "edge_checks", "exit_code", "render_json", "render_text"]
