#!/usr/bin/env python3
"""Broker accounts for Osprey: the Mosquitto dynamic-security file the shipped TLS config
loads (configs/mosquitto/mosquitto-tls.conf).

Every device account is bound to one MQTT client id (the agent's), so a device cannot take
over another client's connection (or fire its last will), and every account may subscribe
only to what its role names, so a device cannot join the workers' shared subscription. The
workers', Home Assistant's and the admin's accounts are the operator's, not a device's: they
may be bound too (--client-id), and are not by default, since scaled worker replicas take
generated ids. Roles:

  device          publishes under osprey/<id>/ and its Home Assistant discovery topics;
                  subscribes to its own offload answers and Home Assistant's status
  worker          reads every device's requests (shared subscription or plain), answers on
                  each device's response topic, publishes its stats under osprey/cloud/
  homeassistant   reads osprey/# and homeassistant/#, publishes homeassistant/status
  admin           manages the file through the broker ($CONTROL/dynamic-security, for
                  mosquitto_ctrl) without a restart

Usage (standard library only; run on the broker's host):

  scripts/broker_accounts.py FILE init [--admin NAME]
  scripts/broker_accounts.py FILE device jetson-gate-01
  scripts/broker_accounts.py FILE worker cloud-worker
  scripts/broker_accounts.py FILE homeassistant
  scripts/broker_accounts.py FILE remove jetson-gate-01
  scripts/broker_accounts.py FILE list

A password comes from --password-env VAR or --password-file PATH, or is made and printed
once. Mosquitto reads the file at start; restart the broker after a change (or make the
same change live with mosquitto_ctrl as the admin account).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import sys
from pathlib import Path

ITERATIONS = 1000
SALT_BYTES = 12  # what Mosquitto 2.0's dynamic-security plugin reads
HASH_BYTES = 64  # PBKDF2-HMAC-SHA512
DEFAULT_ACCESS = {"publishClientSend": False, "publishClientReceive": True,
                  "subscribe": False, "unsubscribe": True}
UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")
RESERVED = {"cloud"}
"""Device ids that are topic levels of their own: osprey/cloud/ is the workers'."""


class AccountError(Exception):
    """What is wrong with a command, said so that it can be fixed."""


def node_id(device: str) -> str:
    """The Home Assistant node id a device announces its entities under (the agent's rule,
    edge_agent/runtime/mqtt/homeassistant.py: each run of characters outside [a-zA-Z0-9_-]
    becomes one _, and none at either end)."""
    return UNSAFE.sub("_", f"osprey_{device}").strip("_")


def acl(kind: str, topic: str) -> dict:
    return {"acltype": kind, "topic": topic, "priority": 0, "allow": True}


def device_role(device: str, prefix: str, ha: str = "homeassistant") -> dict:
    node = node_id(device)
    return {"rolename": f"device-{device}", "acls": [
        acl("publishClientSend", f"{prefix}/{device}/#"),
        acl("subscribePattern", f"{prefix}/{device}/offload/response"),
        acl("publishClientSend", f"{ha}/+/{node}/+/config"),
        acl("subscribePattern", f"{ha}/+/{node}/+/config"),
        acl("subscribePattern", f"{ha}/status"),
    ]}


def worker_role(prefix: str) -> dict:
    return {"rolename": "worker", "acls": [
        acl("subscribePattern", f"$share/+/{prefix}/+/offload/request"),
        acl("subscribePattern", f"{prefix}/+/offload/request"),
        acl("publishClientSend", f"{prefix}/+/offload/response"),
        acl("publishClientSend", f"{prefix}/cloud/#"),
    ]}


def homeassistant_role(prefix: str, ha: str = "homeassistant") -> dict:
    return {"rolename": "homeassistant", "acls": [
        acl("subscribePattern", f"{prefix}/#"),
        acl("subscribePattern", f"{ha}/#"),
        acl("publishClientSend", f"{ha}/status"),
    ]}


def admin_role() -> dict:
    return {"rolename": "admin", "acls": [
        acl("publishClientSend", "$CONTROL/dynamic-security/#"),
        acl("publishClientReceive", "$CONTROL/dynamic-security/#"),
        acl("subscribePattern", "$CONTROL/dynamic-security/#"),
        acl("subscribePattern", "$SYS/#"),
    ]}


def hashed(password: str) -> dict:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, HASH_BYTES)
    return {"password": base64.b64encode(digest).decode(),
            "salt": base64.b64encode(salt).decode(), "iterations": ITERATIONS}


def load(path: Path) -> dict:
    if not path.exists():
        raise AccountError(f"{path}: no such file: make it first with "
                           f"`{Path(sys.argv[0]).name} {path} init`")
    try:
        text = path.read_text()
    except OSError as exc:
        raise AccountError(f"{path}: cannot be read ({exc.strerror}): the broker's container "
                           "owns it once it has run; run this as root (sudo)") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise AccountError(f"{path}: not a dynamic-security file ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("clients"), list):
        raise AccountError(f"{path}: not a dynamic-security file (no clients list)")
    return doc


def save(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        # 0600 from the start: password hashes
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise AccountError(f"{path}: cannot be written ({exc.strerror}): the broker's "
                           "container owns its folder once it has run; run this as root "
                           "(sudo)") from exc


def set_role(doc: dict, role: dict) -> None:
    doc["roles"] = [r for r in doc["roles"] if r["rolename"] != role["rolename"]] + [role]


def add_client(doc: dict, username: str, client_id: str | None, role: str, password: str,
               replace: bool) -> None:
    taken = {c["username"]: c for c in doc["clients"]}
    if username in taken and not replace:
        raise AccountError(f"account {username!r} exists: pass --replace to give it a new "
                           "password and client id")
    bound = {c.get("clientid"): c["username"] for c in doc["clients"]
             if c["username"] != username}
    if client_id is not None and client_id in bound:
        raise AccountError(f"client id {client_id!r} is already bound to account "
                           f"{bound[client_id]!r}: each account needs its own")
    doc["clients"] = [c for c in doc["clients"] if c["username"] != username]
    entry = {"username": username, "roles": [{"rolename": role}], **hashed(password)}
    if client_id is not None:
        entry["clientid"] = client_id
    doc["clients"].append(entry)


def check_name(kind: str, value: str) -> str:
    if not value or any(c in value for c in "/+#") or value.strip() != value:
        raise AccountError(f"{kind} {value!r}: must be non-empty, without '/', '+', '#' or "
                           "surrounding spaces (it is an MQTT topic level)")
    if kind == "device id" and value in RESERVED:
        raise AccountError(f"device id {value!r} is reserved: <prefix>/{value}/ is the "
                           "workers' topics")
    return value


def password_from(args: argparse.Namespace, username: str) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise AccountError(f"--password-env {args.password_env}: that variable is not set "
                               "or empty")
        return value
    if args.password_file:
        try:
            value = Path(args.password_file).read_text().strip()
        except OSError as exc:
            raise AccountError(f"--password-file {args.password_file}: {exc.strerror}") from exc
        if not value:
            raise AccountError(f"--password-file {args.password_file}: the file is empty")
        return value
    value = secrets.token_urlsafe(18)
    print(f"password for {username}: {value}  (shown once: give it to that client now)")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="the dynamic-security JSON file")
    parser.add_argument("--prefix", default="osprey", help="topic prefix (mqtt.topic_prefix)")
    parser.add_argument("--ha-prefix", default="homeassistant",
                        help="Home Assistant's discovery prefix (homeassistant.prefix)")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_password(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--password-env", metavar="VAR", help="read the password from $VAR")
        p.add_argument("--password-file", metavar="PATH", help="read the password from PATH")
        p.add_argument("--replace", action="store_true", help="replace an existing account")
        return p

    init = with_password(sub.add_parser("init", help="a new file (refuses to overwrite)"))
    init.add_argument("--admin", metavar="NAME", help="also an admin account (mosquitto_ctrl)")
    init.add_argument("--admin-client-id", help="bind the admin account to this client id")
    dev = with_password(sub.add_parser("device", help="an edge device (username = device id)"))
    dev.add_argument("device_id")
    dev.add_argument("--client-id", help="default osprey-<device_id> (the agent's default)")
    wrk = with_password(sub.add_parser("worker", help="the cloud workers' account"))
    wrk.add_argument("username")
    wrk.add_argument("--client-id", help="bind it to one client id (one worker only)")
    ha = with_password(sub.add_parser("homeassistant", help="Home Assistant's MQTT account"))
    ha.add_argument("--username", default="homeassistant")
    ha.add_argument("--client-id", help="bind it to one client id (set the same in Home "
                    "Assistant's MQTT options)")
    rm = sub.add_parser("remove", help="remove an account (and a device's role)")
    rm.add_argument("username")
    sub.add_parser("list", help="the accounts, their client ids and roles")
    args = parser.parse_args(argv)

    try:
        if args.command == "init":
            if args.file.exists():
                raise AccountError(f"{args.file} exists: it holds accounts; remove it first "
                                   "to start again")
            doc = {"defaultACLAccess": dict(DEFAULT_ACCESS), "clients": [], "groups": [],
                   "roles": [worker_role(args.prefix),
                             homeassistant_role(args.prefix, args.ha_prefix), admin_role()]}
            if args.admin:
                add_client(doc, check_name("admin", args.admin), args.admin_client_id, "admin",
                           password_from(args, args.admin), False)
            args.file.parent.mkdir(parents=True, exist_ok=True)
            save(args.file, doc)
            print(f"{args.file}: made" + (f", admin account {args.admin}" if args.admin else ""))
            return 0
        doc = load(args.file)
        if args.command == "device":
            device = check_name("device id", args.device_id)
            set_role(doc, device_role(device, args.prefix, args.ha_prefix))
            client_id = args.client_id or f"osprey-{device}"
            add_client(doc, device, client_id, f"device-{device}",
                       password_from(args, device), args.replace)
            done = f"device {device} (client id {client_id})"
        elif args.command == "worker":
            name = check_name("username", args.username)
            set_role(doc, worker_role(args.prefix))
            add_client(doc, name, args.client_id, "worker", password_from(args, name),
                       args.replace)
            done = f"worker account {name} (client id {args.client_id or 'any'})"
        elif args.command == "homeassistant":
            name = check_name("username", args.username)
            set_role(doc, homeassistant_role(args.prefix, args.ha_prefix))
            add_client(doc, name, args.client_id, "homeassistant", password_from(args, name),
                       args.replace)
            done = f"Home Assistant account {name} (client id {args.client_id or 'any'})"
        elif args.command == "remove":
            before = len(doc["clients"])
            doc["clients"] = [c for c in doc["clients"] if c["username"] != args.username]
            if len(doc["clients"]) == before:
                raise AccountError(f"no account {args.username!r} in {args.file}")
            doc["roles"] = [r for r in doc["roles"] if r["rolename"] != f"device-{args.username}"]
            done = f"removed {args.username}"
        else:
            for c in sorted(doc["clients"], key=lambda c: c["username"]):
                roles = ", ".join(r["rolename"] for r in c.get("roles", []))
                print(f"{c['username']:<24} client id {c.get('clientid') or '(any)':<28} {roles}")
            return 0
        save(args.file, doc)
        print(f"{args.file}: {done}; restart the broker to load it")
        return 0
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
