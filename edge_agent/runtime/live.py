"""The live view: a page that shows what each camera sees and what the model says.

Per camera: the latest frame with the edge's boxes, track ids and labels drawn, the latest
refined answer drawn apart (dashed, magenta, for a few seconds after it came), the camera's
state, frame rates, latency, recent events, and the offload and cache counters. The page is
self-contained (no CDN, no web font) and polls two endpoints: `/frame/<camera>.jpg` (the
latest drawn frame) and `/api/state` (JSON).

It costs nothing while nobody watches: the post thread hands a frame over only when a viewer
asked for that camera within the last `IDLE_S` seconds, into a one-slot buffer (a newer frame
replaces an older one not yet drawn), and one encoder thread draws and encodes at most
`live.max_fps` frames a second. Detection never waits for it. It listens on localhost by
default; basic auth when `live.username`/`live.password` are set.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import unquote
from wsgiref.simple_server import make_server

import cv2
import numpy as np

from edge_agent.core.detector.detections import Detections
from edge_agent.core.metrics import QuietHandler, ThreadingServer
from edge_agent.runtime.config import LiveConfig

log = logging.getLogger("osprey.live")

IDLE_S = 2.0
"""A camera counts as watched for this long after a viewer last asked for its frame."""
REFINED_SHOWN_S = 4.0
"""A refined answer is drawn on the frames for this long after it arrived."""
EDGE_COLOUR = (80, 200, 60)
CLOUD_COLOUR = (200, 60, 220)


class LiveView:
    def __init__(self, config: LiveConfig, cameras: list[str],
                 state: Callable[[], dict[str, Any]]) -> None:
        self.config = config
        self.cameras = list(cameras)
        self.state = state
        self.encoded = 0
        """Frames drawn and encoded since start (0 while nobody watched)."""
        self._watched: dict[str, float] = {}
        self._pending: dict[str, tuple[np.ndarray, Detections]] = {}
        self._latest: dict[str, tuple[int, bytes]] = {}
        self._refined: dict[str, tuple[float, Detections, str]] = {}
        self._events: dict[str, deque[dict[str, Any]]] = {c: deque(maxlen=8) for c in cameras}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._encoder = threading.Thread(target=self._encode_loop, name="live-encoder",
                                         daemon=True)
        self._server = None
        self._serving: threading.Thread | None = None
        self._auth = None
        if config.username:
            secret = config.password.get_secret_value() if config.password else ""
            token = base64.b64encode(f"{config.username}:{secret}".encode()).decode()
            self._auth = f"Basic {token}"

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> LiveView:
        self._server = make_server(self.config.host, self.config.port, self._app,
                                   server_class=ThreadingServer, handler_class=QuietHandler)
        self._serving = threading.Thread(target=self._server.serve_forever, name="live",
                                         daemon=True)
        self._serving.start()
        self._encoder.start()
        if self.config.host not in ("127.0.0.1", "localhost", "::1") and self._auth is None:
            log.warning("the live view listens on %s without a password: anyone who reaches "
                        "port %d sees the cameras; set live.username and live.password",
                        self.config.host, self.port)
        return self

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self.config.port

    @property
    def url(self) -> str:
        host = "localhost" if self.config.host in ("0.0.0.0", "::") else self.config.host
        return f"http://{host}:{self.port}/"

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._encoder.join(2)

    # from the post thread (cheap unless someone watches) ----------------------------------

    def watching(self, camera: str) -> bool:
        return time.monotonic() - self._watched.get(camera, -1e9) < IDLE_S

    def frame(self, camera: str, image: np.ndarray, shown: Detections) -> None:
        if not self.watching(camera):
            return
        with self._cond:
            self._pending[camera] = (image, shown)  # drop-oldest: one slot per camera
            self._cond.notify()

    def answer(self, camera: str, dets: Detections, source: str) -> None:
        self._refined[camera] = (time.monotonic(), dets, source)

    def event(self, camera: str, payload: dict[str, Any]) -> None:
        if camera in self._events:
            self._events[camera].appendleft(
                {k: payload.get(k) for k in ("type", "label", "track_id", "score",
                                             "start_time", "verified")})

    # encoder thread ----------------------------------------------------------------------

    def _encode_loop(self) -> None:
        period = 1.0 / self.config.max_fps
        while not self._stop.is_set():
            with self._cond:
                while not self._pending and not self._stop.is_set():
                    self._cond.wait(0.5)
                work, self._pending = self._pending, {}
            started = time.monotonic()
            for camera, (image, shown) in work.items():
                try:
                    jpeg = self._draw(camera, image, shown)
                except Exception:  # a drawing bug must not end the view
                    log.exception("live view: cannot draw camera %s", camera)
                    continue
                seq = self._latest.get(camera, (0, b""))[0] + 1
                self._latest[camera] = (seq, jpeg)
                self.encoded += 1
            self._stop.wait(max(0.0, period - (time.monotonic() - started)))

    def _draw(self, camera: str, image: np.ndarray, shown: Detections) -> bytes:
        canvas = image.copy()
        thick = max(1, round(canvas.shape[1] / 480))
        names = shown.class_names
        ids = shown.track_id if shown.track_id is not None else np.full(len(shown), -1)
        for box, score, cid, tid in zip(shown.xyxy, shown.score, shown.class_id, ids,
                                        strict=True):
            label = names[cid] if cid < len(names) else f"class_{cid}"
            text = f"{label} #{tid} {score:.2f}" if tid >= 0 else f"{label} {score:.2f}"
            _box(canvas, box, EDGE_COLOUR, thick, text)
        refined = self._refined.get(camera)
        if refined is not None and time.monotonic() - refined[0] < REFINED_SHOWN_S:
            _, dets, source = refined
            cloud_names = dets.class_names
            for box, score, cid in zip(dets.xyxy, dets.score, dets.class_id, strict=True):
                label = cloud_names[cid] if cid < len(cloud_names) else f"class_{cid}"
                _box(canvas, box, CLOUD_COLOUR, thick, f"{source}: {label} {score:.2f}",
                     dashed=True, below=True)
        ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()

    # HTTP --------------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        if self._auth is not None and not hmac.compare_digest(
                environ.get("HTTP_AUTHORIZATION", ""), self._auth):
            start_response("401 Unauthorized", [("WWW-Authenticate",
                                                 'Basic realm="Osprey live view"'),
                                                ("Content-Type", "text/plain")])
            return [b"the live view needs a user name and password\n"]
        path = unquote(environ.get("PATH_INFO", "/"))
        if path == "/":
            return _send(start_response, "text/html; charset=utf-8", page())
        if path == "/api/state":
            return _send(start_response, "application/json",
                         json.dumps(self.api_state()).encode())
        if path.startswith("/frame/") and path.endswith(".jpg"):
            camera = path[len("/frame/"):-len(".jpg")]
            if camera not in self.cameras:
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [f"no camera {camera!r}; cameras: {', '.join(self.cameras)}\n".encode()]
            self._watched[camera] = time.monotonic()
            seq, jpeg = self._latest.get(camera, (0, b""))
            if not jpeg:
                start_response("503 Service Unavailable", [("Content-Type", "text/plain"),
                                                           ("Retry-After", "1")])
                return [b"no frame drawn yet\n"]
            return _send(start_response, "image/jpeg", jpeg, [("X-Frame-Seq", str(seq))])
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: / (the page), /api/state, /frame/<camera>.jpg\n"]

    def api_state(self) -> dict[str, Any]:
        s = self.state()
        counters, stats = s["counters"], s.get("stats") or {}
        cams = {}
        for name in self.cameras:
            c = counters["cameras"].get(name, {})
            interval = stats.get("cameras", {}).get(name, {})
            refined = self._refined.get(name)
            cams[name] = {
                "state": c.get("state"), "frames_in": c.get("frames_in"),
                "processed": c.get("processed"), "events": c.get("events"),
                "tracks": c.get("tracks"), "refined": c.get("refined"),
                "cache_hits": c.get("cache_hits"), "matches": c.get("matches"),
                "fps_in": interval.get("fps_in"), "fps_processed": interval.get("fps_processed"),
                "latency_ms_p50": interval.get("latency_ms_p50"),
                "latency_ms_p95": interval.get("latency_ms_p95"),
                "frame_seq": self._latest.get(name, (0, b""))[0],
                "recent_events": list(self._events[name]),
                "last_refined": None if refined is None else {
                    "age_s": round(time.monotonic() - refined[0], 1), "source": refined[2],
                    "objects": len(refined[1])}}
        off = counters.get("offload")
        return {"device": s.get("device"), "cameras": cams,
                "offload": None if off is None else {"counts": off["counts"],
                                                     "bytes_up": off["bytes_up"],
                                                     "rtt_ms_p50": off["rtt_ms_p50"]},
                "mqtt": counters["mqtt"]}


def _send(start_response: Callable, kind: str, body: bytes,
          extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response("200 OK", [("Content-Type", kind), ("Cache-Control", "no-store"),
                              ("Content-Length", str(len(body))), *(extra or [])])
    return [body]


def _box(canvas: np.ndarray, box: np.ndarray, colour: tuple[int, int, int], thick: int,
         text: str, *, dashed: bool = False, below: bool = False) -> None:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    if dashed:
        step = 8 * thick
        for xa in range(x1, x2, 2 * step):
            xb = min(x2, xa + step)
            cv2.line(canvas, (xa, y1), (xb, y1), colour, thick)
            cv2.line(canvas, (xa, y2), (xb, y2), colour, thick)
        for ya in range(y1, y2, 2 * step):
            yb = min(y2, ya + step)
            cv2.line(canvas, (x1, ya), (x1, yb), colour, thick)
            cv2.line(canvas, (x2, ya), (x2, yb), colour, thick)
    else:
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thick)
    scale = 0.4 * thick
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    ty = y2 + th + 4 if below else max(th + 2, y1 - 4)
    cv2.rectangle(canvas, (x1, ty - th - 2), (x1 + tw + 2, ty + base), colour, -1)
    cv2.putText(canvas, text, (x1 + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                1, cv2.LINE_AA)


def page() -> bytes:
    """The page (a file beside this module, shipped in the package)."""
    return resources.files("edge_agent.runtime").joinpath("live.html").read_bytes()
