"""Checks of the services a config names: the MQTT broker (a real connect) and Redis."""

from __future__ import annotations

import os
import socket
import ssl
import threading

from edge_agent.core.config.common import MqttConfig
from edge_agent.core.doctor.report import Check, fail, ok, warn
from edge_agent.core.logs import redact

BAD_CREDENTIALS, NOT_AUTHORIZED = 134, 135
"""CONNACK reason codes (MQTT 5; paho maps 3.1.1's 4 and 5 onto them)."""


def _where(config: MqttConfig) -> str:
    tls = "TLS" if config.tls.enabled else "no TLS"
    who = f" as {config.username}" if config.username else " anonymously"
    return f"{config.host}:{config.port} (MQTT {config.protocol}, {tls}){who}"


def _connect(config: MqttConfig, client_id: str, timeout: float) -> dict[str, object]:
    """One CONNECT: {"rc": reason code} when the broker answered, {} when it did not, or
    {"error": exception} when the socket or TLS failed."""
    from edge_agent.core.mqtt.client import make_client

    client = make_client(config, client_id)
    answer: dict[str, object] = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        answer["rc"] = reason_code
        done.set()

    def on_disconnect(client, userdata, flags, reason_code, properties) -> None:
        done.set()

    client.on_connect, client.on_disconnect = on_connect, on_disconnect
    try:
        client.connect(config.host, config.port, config.keepalive_s)
    except OSError as exc:  # ssl.SSLError and socket.gaierror are OSErrors
        return {"error": exc}
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return answer


def check_broker(config: MqttConfig, *, timeout: float = 5.0, env_prefix: str = "OSPREY_EDGE",
                 device_id: str | None = None, client_id: str | None = None) -> Check:
    """Connect with the configured credentials and TLS and tell apart: unreachable, TLS
    refused, credentials refused, and connected. The client id is the doctor's own, so a
    running agent or worker is never disconnected by the check; when the broker refuses it
    and `client_id` (the agent's) is given, the check is made once more with that id: a broker
    that binds each device's account to its agent's client id (the shipped one) refuses every
    other id, and tells that apart from a wrong password no other way."""

    where = _where(config)
    answer = _connect(config, f"osprey-doctor-{socket.gethostname()[:20]}-{os.getpid()}",
                      timeout)
    error = answer.get("error")
    if isinstance(error, ssl.SSLCertVerificationError):
        return fail("broker", f"{where}: TLS refused, the broker's certificate is not trusted "
                    f"({error.verify_message})", "set mqtt.tls.ca_file to the CA that signed the "
                    "broker's certificate (and connect by a name the certificate holds)")
    if isinstance(error, ssl.SSLError):
        return fail("broker", f"{where}: TLS handshake failed ({error.reason or error})",
                    "is this port a TLS listener (8883 usually)? otherwise set "
                    "mqtt.tls.enabled: false")
    if isinstance(error, socket.gaierror):
        return fail("broker", f"{where}: unknown host ({error.strerror})", "check mqtt.host")
    if isinstance(error, OSError):
        return fail("broker", f"{where}: unreachable ({error.strerror or error})",
                    "is the broker running and listening there? check mqtt.host, mqtt.port "
                    "and the firewall")
    rc = answer.get("rc")
    password = (f"{env_prefix}__MQTT__PASSWORD or mqtt.password_file")
    if rc is None:
        hint = ("the broker may expect TLS on this port: set mqtt.tls.enabled: true and "
                "mqtt.tls.ca_file" if not config.tls.enabled else
                "check that the broker is healthy (its log says why)")
        return fail("broker", f"{where}: no answer to CONNECT within {timeout:g} s", hint)
    as_agent = ""
    if rc.is_failure and rc.value in (BAD_CREDENTIALS, NOT_AUTHORIZED) and config.username \
            and client_id:
        again = _connect(config, client_id, timeout).get("rc")
        if again is not None and not again.is_failure:
            rc, as_agent = again, (f" (as the client id {client_id}, which the broker binds "
                                   "this account to: a running agent or worker with it was "
                                   "disconnected for a moment, its status read offline, and "
                                   "it reconnects)")
    if rc.is_failure:
        if rc.value in (BAD_CREDENTIALS, NOT_AUTHORIZED) and config.username:
            # Mosquitto answers a wrong password with "not authorized"; others say "bad
            # user name or password".
            bound = (f", or this account is bound to a client id other than {client_id}"
                     if client_id else "")
            return fail("broker", f"{where}: refused: bad username or password{bound} ({rc})",
                        f"check mqtt.username and the password ({password}); on Osprey's "
                        "broker, (re)make the account with scripts/broker_accounts.py")
        if rc.value in (BAD_CREDENTIALS, NOT_AUTHORIZED):
            return fail("broker", f"{where}: refused: the broker wants a username ({rc})",
                        f"set mqtt.username and the password ({password})")
        return fail("broker", f"{where}: refused: {rc}", "the broker's log says why")
    if device_id and config.username and config.username != device_id:
        return warn("broker", f"{where}: connected{as_agent}; the username differs from "
                    f"device_id {device_id!r}", "the shipped broker accounts "
                    "(scripts/broker_accounts.py) give each device osprey/<username>/#: use "
                    "the device id as its username")
    return ok("broker", f"{where}: connected{as_agent}")


def check_redis(url: str, timeout: float = 5.0) -> Check:
    shown = redact(url)
    try:
        import redis
    except ImportError:
        return fail("redis", f"{shown}: redis-py is not installed",
                    "pip install '.[cloud]'")
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
    except redis.AuthenticationError as exc:
        return fail("redis", f"{shown}: refused: {exc}",
                    "check the password in cache.redis_url (redis://:PASSWORD@host:6379/0)")
    except redis.RedisError as exc:
        return fail("redis", f"{shown}: unreachable ({exc})",
                    "is Redis running there? check cache.redis_url; without Redis the worker "
                    "caches in memory only (set cache.redis_url: null to mean that)")
    finally:
        client.close()
    return ok("redis", f"{shown}: PONG from Redis {version}")
