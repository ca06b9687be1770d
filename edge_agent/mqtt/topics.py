"""MQTT topic names of the API (docs/mqtt-api.md). `{d}` device id, `{c}` camera name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str
    device: str

    @property
    def status(self) -> str:
        return f"{self.prefix}/{self.device}/status"

    @property
    def stats(self) -> str:
        return f"{self.prefix}/{self.device}/stats"

    @property
    def offload_request(self) -> str:
        return f"{self.prefix}/{self.device}/offload/request"

    @property
    def offload_response(self) -> str:
        return f"{self.prefix}/{self.device}/offload/response"

    def camera(self, camera: str, leaf: str) -> str:
        """leaf: status, detections, events, refined, matches or snapshot."""
        return f"{self.prefix}/{self.device}/{camera}/{leaf}"
