#!/usr/bin/env python3
"""Regenerate docs/configuration.md from the config models: python scripts/gen_config_docs.py"""

from __future__ import annotations

import sys
from pathlib import Path

from cloud_fallback.config import CloudConfig
from edge_agent.core.config.reference import reference
from edge_agent.runtime.config import EdgeConfig

HEADER = """# Configuration reference

Generated from the pydantic models by `python scripts/gen_config_docs.py`; do not edit by hand
(a test fails when this file and the models disagree). Unknown keys are errors. `${NAME}` in a
string reads an environment variable (`${NAME:-default}` gives a fallback), and
`OSPREY_EDGE__KEY__SUBKEY=value` / `OSPREY_CLOUD__KEY__SUBKEY=value` override any key (list
items by index: `OSPREY_EDGE__CAMERAS__0__URL`). `[]` in a key marks a list of mappings.

"""


def render() -> str:
    return (HEADER + reference("Edge agent (`edge-agent ... --config`)", EdgeConfig) + "\n"
            + reference("Cloud worker (`cloud-fallback ... --config`)", CloudConfig))


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    out.write_text(render())
    print(f"wrote {out}", file=sys.stderr)
