"""An HTTP MJPEG camera served by the tests: multipart JPEG frames of the synthetic world.

Stop it to make the camera disappear (open connections are cut) and start it again on the same
port to bring it back, as an IP camera that reboots would.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2

from edge_agent.tools.sim import SyntheticWorld, WorldOptions

BOUNDARY = "ospreyframe"


class MjpegCamera:
    def __init__(self, port: int, seed: int = 3, preset: str = "normal", fps: float = 15.0):
        self.port, self.fps = port, fps
        self.world = SyntheticWorld(WorldOptions.from_preset(preset, seed=seed))
        self.frames_served = 0
        self._server: ThreadingHTTPServer | None = None
        self._alive = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegCamera:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type",
                                 f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                index = camera.frames_served
                try:
                    while camera._alive.is_set():
                        image = camera.world.render(index)[0].image
                        jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpeg)}\r\n\r\n".encode())
                        self.wfile.write(jpeg.tobytes() + b"\r\n")
                        index += 1
                        camera.frames_served += 1
                        time.sleep(1.0 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._alive.set()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._alive.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
