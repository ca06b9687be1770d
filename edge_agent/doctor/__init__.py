"""`edge-agent doctor`: checks of this machine, the model, the broker and the cameras, one line
each with a verdict and a fix. The checks `cloud-fallback doctor` shares are in
edge_agent.core.doctor."""

from edge_agent.core.doctor.report import Check, exit_code, render_json, render_text
from edge_agent.doctor.edge import edge_checks

__all__ = ["Check", "edge_checks", "exit_code", "render_json", "render_text"]
