"""The core both sides share: detections and the detector runtime, the wire protocol, topics
and the MQTT client, configuration parts and their loader, errors and logs.

It imports nothing from the agent's runtime, the cloud worker or the tools (an import-linter
contract in pyproject.toml says so, and CI checks it)."""
