"""The live view in a real browser (headless Chromium): the page shows each camera's frames
with boxes as they change and the same counters as /metrics; nothing is drawn while nobody
watches; basic auth when configured."""

from __future__ import annotations

import base64
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from agent_kit import shared_detector
from browser import Browser
from servers import wait_until

from edge_agent.core.metrics import MetricsServer
from edge_agent.runtime.config import EdgeConfig, LiveConfig
from edge_agent.runtime.live import LiveView
from edge_agent.runtime.mqtt.publisher import Publisher
from edge_agent.runtime.pipeline import Agent

pytestmark = pytest.mark.integration

CAMERA = "synthetic://?seed=51&preset=normal&fps=15&seconds=9"


def run_agent(port: int, device: str, live_config: dict):
    config = EdgeConfig.model_validate({
        "device_id": device, "stats_interval_s": 1.0,
        "cameras": [{"name": "gate", "url": CAMERA}],
        "mqtt": {"host": "127.0.0.1", "port": port},
        "live": {"enabled": True, "port": 0, **live_config}})
    publisher = Publisher(config.mqtt, device).start()
    assert publisher.connected.wait(5)
    holder: dict = {}
    live = LiveView(config.live, ["gate"], lambda: holder["agent"].live_state()).start()
    agent = Agent(config, shared_detector(), publisher, model_id="osprey_edge_ssdlite",
                  live=live, configuration_url=live.url)
    holder["agent"] = agent
    metrics = MetricsServer("127.0.0.1", 0, agent.metrics.registry, agent.health).start()
    return agent, publisher, live, metrics


def metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"{name}\{{([^}}]*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            total += float(m.group(2))
    assert total or want, name
    return total


def test_the_page_in_a_browser_shows_frames_and_the_metrics_numbers(mosquitto, tmp_path):
    agent, publisher, live, metrics = run_agent(mosquitto.port, "live1", {})
    browser = None
    try:
        agent.start()
        assert wait_until(lambda: agent.pipelines[0].processed >= 15, 20)
        time.sleep(1.0)
        assert live.encoded == 0, "frames were drawn while nobody watched"
        browser = Browser()
        browser.goto(live.url)
        # the picture changes at least twice (three distinct frames shown)
        browser.wait_js("(() => { const d = document.querySelector('[data-camera=gate]');"
                        " return d && Number(d.dataset.frames) >= 3; })()", 30)
        assert browser.js("document.querySelector('[data-camera=gate] img').naturalWidth") \
            == 640
        shot = Path(os.environ.get("OSPREY_LIVE_SCREENSHOT", tmp_path / "live.png"))
        browser.screenshot(shot)
        assert shot.stat().st_size > 10_000
        # once the camera's clip has ended the numbers stand still: the page's equal /metrics
        assert wait_until(lambda: agent.pipelines[0].state == "down", 30)
        assert agent.wait(10)
        time.sleep(0.5)
        updated = browser.js("document.body.dataset.updated")
        browser.wait_js(f"document.body.dataset.updated !== '{updated}' && "
                        "document.querySelector('[data-camera=gate]').dataset.state === 'down'",
                        10)
        shown = browser.js("""(() => {
            const out = {};
            for (const td of document.querySelectorAll('[data-camera=gate] td[data-field]'))
                out[td.dataset.field] = td.textContent;
            return out; })()""")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/metrics") as r:
            text = r.read().decode()
        assert int(shown["processed"]) == metric(text, "osprey_frames_processed_total",
                                                 camera="gate") > 60
        assert int(shown["frames_in"]) == metric(text, "osprey_frames_in_total",
                                                 camera="gate")
        assert int(shown["events"]) == metric(text, "osprey_events_total", camera="gate")
        assert shown["state"] == "down"
        assert float(shown["fps_processed"]) >= 0
        assert live.encoded >= 3
    finally:
        if browser is not None:
            browser.close()
        agent.stop()
        publisher.stop()
        live.stop()
        metrics.stop()


def test_basic_auth_and_idle_cameras(mosquitto):
    agent, publisher, live, metrics = run_agent(
        mosquitto.port, "live2", {"username": "viewer", "password": "s3cret"})
    try:
        agent.start()
        url = live.url
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url + "api/state")
        assert denied.value.code == 401
        token = base64.b64encode(b"viewer:s3cret").decode()
        wrong = base64.b64encode(b"viewer:nope").decode()
        for auth, code in ((wrong, 401), (token, 200)):
            req = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
            try:
                with urllib.request.urlopen(req) as r:
                    got = r.status
            except urllib.error.HTTPError as exc:
                got = exc.code
            assert got == code
        frame = urllib.request.Request(url + "frame/gate.jpg",
                                       headers={"Authorization": f"Basic {token}"})

        def fetch():
            try:
                with urllib.request.urlopen(frame) as r:
                    return int(r.headers["X-Frame-Seq"]), r.read()
            except urllib.error.HTTPError:
                return None

        assert wait_until(lambda: fetch() is not None, 10)
        _, jpeg = fetch()
        assert jpeg[:2] == b"\xff\xd8"
        # nobody asks any more: after the idle time no frame is drawn
        time.sleep(2.5)
        drawn = live.encoded
        time.sleep(1.0)
        assert live.encoded == drawn
    finally:
        agent.stop()
        publisher.stop()
        live.stop()
        metrics.stop()


def test_credentials_go_together():
    with pytest.raises(ValueError, match=r"live\.username and live\.password go together"):
        LiveConfig(username="viewer")
