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
        return f"{self.prefix}/{self.device}/{REQUEST_LEAF}"

    @property
    def offload_response(self) -> str:
        return f"{self.prefix}/{self.device}/{RESPONSE_LEAF}"

    def camera(self, camera: str, leaf: str) -> str:
        """leaf: status, detections, events, refined, matches or snapshot."""
        return f"{self.prefix}/{self.device}/{camera}/{leaf}"


REQUEST_LEAF = "offload/request"
RESPONSE_LEAF = "offload/response"


def shared_request_filter(prefix: str, group: str | None, devices: str = "+") -> str:
    """The cloud workers' shared subscription to offload requests (`devices`: `+` or one
    device id); a plain subscription when `group` is None (one worker alone)."""
    plain = f"{prefix}/{devices}/{REQUEST_LEAF}"
    return plain if group is None else f"$share/{group}/{plain}"


def worker_stats(prefix: str, worker_id: str) -> str:
    return f"{prefix}/cloud/{worker_id}/stats"


def request_device(prefix: str, request_topic: str) -> str | None:
    """The device that published on `request_topic` (<prefix>/<device>/offload/request);
    None when the topic is not a request topic."""
    head, sep, device = request_topic.removesuffix("/" + REQUEST_LEAF).rpartition("/")
    if not request_topic.endswith("/" + REQUEST_LEAF) or not sep or head != prefix \
            or not device:
        return None
    return device


def response_topic_for(prefix: str, request_topic: str) -> str | None:
    """The response topic of the device that published on `request_topic`; None when the
    topic is not a request topic."""
    device = request_device(prefix, request_topic)
    return None if device is None else Topics(prefix, device).offload_response
