"""Session fixtures: real Mosquitto and Redis on free ports, and the shared real material."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import Server, mosquitto_server, redis_server

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("OSPREY_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory) -> Iterator[Server]:
    """A real Mosquitto broker for the whole session (MQTT 3.1.1 and 5 on one port)."""
    server = mosquitto_server(tmp_path_factory.mktemp("mosquitto")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis(tmp_path_factory) -> Iterator[Server]:
    """A real Redis server for the whole session, nothing persisted."""
    server = redis_server(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def real_data() -> Path:
    """../shared/data/real: a COCO YOLOX-nano model and real fixed-camera clips."""
    if not (REAL_DATA / "yolox_nano_416.onnx").is_file():
        pytest.skip(f"real test material not found at {REAL_DATA} (a fresh clone has no "
                    "../shared; set OSPREY_REAL_DATA to its folder)")
    return REAL_DATA
