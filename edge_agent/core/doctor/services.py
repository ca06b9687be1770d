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


def check_broker(config: MqttConfig, *, timeout: float = 5.0, env_prefix: str = "OSPREY_EDGE",
                 device_id: str | None = None) -> Check:
    """Connect with the configured credentials and TLS and tell apart: unreachable, TLS
    refused, credentials refused, and connected. The client id is the doctor's own, so a
    running agent or worker is never disconnected by the check."""

    from edge_agent.core.mqtt.client import make_client

    where = _where(config)
    client = make_client(config, f"osprey-doctor-{socket.gethostname()[:20]}-{os.getpid()}")
    answer: dict[str, object] = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        answer["rc"] = reason_code
        done.set()

    def on_disconnect(client, userdata, flags, reason_code, properties) -> None:
        answer.setdefault("closed", reason_code)
        done.set()

    client.on_connect, client.on_disconnect = on_connect, on_disconnect
    try:
        client.connect(config.host, config.port, config.keepalive_s)
    except ssl.SSLCertVerificationError as exc:
        return fail("broker", f"{where}: TLS refused, the broker's certificate is not trusted "
                    f"({exc.verify_message})", "set mqtt.tls.ca_file to the CA that signed the "
                    "broker's certificate (and connect by a name the certificate holds)")
    except ssl.SSLError as exc:
        return fail("broker", f"{where}: TLS handshake failed ({exc.reason or exc})",
                    "is this port a TLS listener (8883 usually)? otherwise set "
                    "mqtt.tls.enabled: false")
    except socket.gaierror as exc:
        return fail("broker", f"{where}: unknown host ({exc.strerror})", "check mqtt.host")
    except OSError as exc:
        return fail("broker", f"{where}: unreachable ({exc.strerror or exc})",
                    "is the broker running and listening there? check mqtt.host, mqtt.port "
                    "and the firewall")
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    rc = answer.get("rc")
    password = (f"{env_prefix}__MQTT__PASSWORD or mqtt.password_file")
    if rc is None:
        hint = ("the broker may expect TLS on this port: set mqtt.tls.enabled: true and "
                "mqtt.tls.ca_file" if not config.tls.enabled else
                "check that the broker is healthy (its log says why)")
        return fail("broker", f"{where}: no answer to CONNECT within {timeout:g} s", hint)
    if rc.is_failure:
        if rc.value in (BAD_CREDENTIALS, NOT_AUTHORIZED) and config.username:
            # Mosquitto answers a wrong password with "not authorized"; others say "bad
            # user name or password".
            return fail("broker", f"{where}: refused: bad username or password ({rc})",
                        f"check mqtt.username and the password ({password}); on Mosquitto, "
                        "set it with mosquitto_passwd")
        if rc.value in (BAD_CREDENTIALS, NOT_AUTHORIZED):
            return fail("broker", f"{where}: refused: the broker wants a username ({rc})",
                        f"set mqtt.username and the password ({password})")
        return fail("broker", f"{where}: refused: {rc}", "the broker's log says why")
    if device_id and config.username and config.username != device_id:
        return warn("broker", f"{where}: connected; the username differs from device_id "
                    f"{device_id!r}", "the ACL in configs/mosquitto/acl.conf gives each device "
                    "osprey/<username>/#: use the device id as its username")
    return ok("broker", f"{where}: connected")


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
