"""An MQTT broker inside the agent's process, for `edge-agent demo` on a machine with none.

It is amqtt (pure Python, MQTT 3.1.1, anonymous, no persistence) on its own asyncio loop in a
daemon thread: enough to try Osprey out, never for production, where the agent connects to a
real broker (Mosquitto, EMQX, ...). The `demo` extra installs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading

log = logging.getLogger("osprey.mqtt")


def broker_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise RuntimeError(
                f"no MQTT broker at {self.host}:{self.port} and the embedded one is not "
                "installed: pip install 'osprey[demo]', or start Mosquitto "
                "(apt-get install mosquitto), or pass --mqtt-host"
            ) from None
        for name in ("amqtt", "transitions"):  # chatty at INFO
            logging.getLogger(name).setLevel(logging.WARNING)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        }
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._broker = Broker(config, loop=self._loop)
                self._loop.run_until_complete(self._broker.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure:
            reason = failure[0] if failure else "timed out"
            raise RuntimeError(f"the embedded MQTT broker did not start on "
                               f"{self.host}:{self.port}: {reason}")
        log.info("embedded MQTT broker (amqtt, MQTT 3.1.1) listening on %s:%d", self.host,
                 self.port)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is None or self._broker is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
