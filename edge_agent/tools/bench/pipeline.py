"""`edge-agent bench pipeline`: the whole agent against pure inference, side by side in one run.

- **pure**: `session.run` (the backend alone) on prepared tensors of the same frames: the
  ceiling.
- **saturated**: a camera faster than the model (frames from memory at twice the pure rate, so
  the source itself costs next to nothing) through the whole agent: capture thread, detector
  (preprocess, infer, decode, NMS), tracker, window, events, MQTT to a real broker.
  `fps_ratio` = its processed frames/s over pure frames/s.
- **real time**: a 30 fps camera (one, then two): what a deployment sees. Capture-to-publish
  latency p50/p99 minus the mean pure inference time is the pipeline's overhead.
- **age**: in the saturated run, the latency at the start and at the end (a queue would grow).
- **memory** (optional, `--memory-minutes`): resident memory of a real-time run sampled every
  few seconds, first minute against the last.

The broker is a Mosquitto started on a free port when its binary is installed, otherwise the
embedded one (MQTT 3.1.1). Latency is capture to publish (the message handed to the MQTT
client), as the agent records it; no subscriber runs in the measured process.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.core.detector import Detector
from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.config import EdgeConfig
from edge_agent.runtime.live import LiveView
from edge_agent.runtime.mqtt.embedded import EmbeddedBroker, broker_reachable
from edge_agent.runtime.mqtt.publisher import Publisher
from edge_agent.runtime.pipeline import Agent
from edge_agent.tools.sim import SyntheticWorld, WorldOptions


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchBroker:
    def __init__(self) -> None:
        self.port = _free_port()
        self._proc: subprocess.Popen | None = None
        self._embedded: EmbeddedBroker | None = None
        exe = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
             if Path(p).exists()), None)
        if exe:
            self.kind, self.protocol = "mosquitto", "5"
            self._tmp = tempfile.TemporaryDirectory()
            conf = Path(self._tmp.name) / "mosquitto.conf"
            conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                            "persistence false\n")
            self._proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
        else:
            self.kind, self.protocol = "embedded", "3.1.1"
            self._embedded = EmbeddedBroker("127.0.0.1", self.port).start()
        end = time.monotonic() + 10
        while not broker_reachable("127.0.0.1", self.port, 0.2):
            if time.monotonic() > end:
                raise RuntimeError(f"the benchmark's {self.kind} broker did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc:
            self._proc.terminate()
            self._proc.wait(5)
        if self._embedded:
            self._embedded.stop()


class MemorySource:
    """Frames from memory at a fixed rate: a camera that costs (almost) no CPU.

    The clip plays forward, then backward, and so on: a loop with no cut, so objects never
    jump from the last frame to the first (a cut would end and start every track at each
    loop, an event storm no camera makes)."""

    def __init__(self, name: str, images: list[np.ndarray], fps: float) -> None:
        self.name, self.images, self.period = name, images, 1.0 / fps
        self._i = 0
        self._t0: float | None = None

    def read(self) -> Frame | None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + self._i * self.period
        if due > now:
            time.sleep(due - now)
        frame = Frame(self.name, self._i, time.monotonic(), time.time(),
                      self.images[pingpong(self._i, len(self.images))])
        self._i += 1
        return frame

    def close(self) -> None:
        pass


def pingpong(i: int, n: int) -> int:
    """Index of the i-th frame of a clip of n played forward, backward, forward..."""
    if n < 2:
        return 0
    k = i % (2 * n - 2)
    return k if k < n else 2 * n - 2 - k


def _frames(n: int = 120) -> list[np.ndarray]:
    """Consecutive frames (4 s at 30 fps) of a synthetic world."""
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=4242))
    return [world.render(i)[0].image for i in range(n)]


def pure_inference(detector: Detector, images: list[np.ndarray], seconds: float) -> float:
    """Frames/s of the backend alone (session.run) on prepared tensors of `images`."""
    feeds = [detector.adapter.prepare(img)[0] for img in images]
    for f in feeds[:5]:
        detector.backend.run(f)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        detector.backend.run(feeds[n % len(feeds)])
        n += 1
    return n / (time.perf_counter() - t0)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * (4096 / 2**20)
    except OSError:  # not Linux: peak RSS is the best there is
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_agent(detector: Detector, broker: BenchBroker, openers: dict[str, Callable],
              seconds: float, device: str, warmup: float = 1.5,
              sample: Callable[[], None] | None = None,
              viewer: Callable[[str], Callable[[], None]] | None = None) -> dict[str, Any]:
    """`viewer(url)`: with it, the agent serves its live view and a viewer watches it from
    before the warm-up to the end (it returns the function that stops it)."""
    config = EdgeConfig.model_validate({
        "device_id": device, "stats_interval_s": 3600,
        "cameras": [{"name": n, "url": "synthetic://", "max_frame_age_ms": 1000}
                    for n in openers],
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "protocol": broker.protocol},
        "live": {"enabled": viewer is not None, "port": 0}})
    publisher = Publisher(config.mqtt, device).start()
    if not publisher.connected.wait(5):
        raise RuntimeError("the agent could not connect to the benchmark broker")
    live = stop_viewer = None
    holder: dict[str, Agent] = {}
    if viewer is not None:
        live = LiveView(config.live, list(openers), lambda: holder["agent"].live_state()).start()
    agent = Agent(config, detector, publisher, model_id="bench", openers=openers, live=live)
    holder["agent"] = agent
    if live is not None:
        stop_viewer = viewer(live.url)
    agent.start()
    try:
        time.sleep(warmup)
        for p in agent.pipelines:
            with p.samples_lock:
                p.latencies.clear()
        before = {p.name: (p.processed, p.camera.stats.frames_in) for p in agent.pipelines}
        drawn0 = live.encoded if live is not None else 0
        t0 = time.monotonic()
        end = t0 + seconds
        while (now := time.monotonic()) < end:
            time.sleep(min(1.0, end - now))
            if sample:
                sample()
        t1 = time.monotonic()
        after = {p.name: (p.processed, p.camera.stats.frames_in) for p in agent.pipelines}
        per_camera: list[list[float]] = []
        for p in agent.pipelines:  # capture to publish, as each message went to the client
            with p.samples_lock:
                per_camera.append(list(p.latencies))
        drawn = (live.encoded - drawn0) if live is not None else 0
    finally:
        if stop_viewer is not None:
            stop_viewer()
        agent.stop()
        publisher.stop()
        if live is not None:
            live.stop()
    span = t1 - t0
    values = [v for cam in per_camera for v in cam]
    arr = np.array(values or [0.0])
    firsts = [float(np.median(c[:max(1, len(c) // 3)])) for c in per_camera if c] or [0.0]
    lasts = [float(np.median(c[-max(1, len(c) // 3):])) for c in per_camera if c] or [0.0]
    return {
        "fps_in": sum(after[k][1] - before[k][1] for k in after) / span,
        "fps": sum(after[k][0] - before[k][0] for k in after) / span,
        "latency_p50_ms": float(np.percentile(arr, 50)),
        "latency_p99_ms": float(np.percentile(arr, 99)),
        "latency_first_third_p50_ms": float(np.mean(firsts)),
        "latency_last_third_p50_ms": float(np.mean(lasts)),
        "messages": len(values), "live_fps_drawn": drawn / span,
    }


def _pool(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of the same setting as one: rates and medians averaged, messages summed."""
    out = {k: statistics.mean(r[k] for r in runs) for k in runs[0] if k != "messages"}
    out["messages"] = sum(r["messages"] for r in runs)
    return out


def intra_op_threads(detector: Detector) -> int | None:
    """The intra-op thread count the detector's ONNX Runtime session was given (0: the
    library's default), None for other backends."""
    session = getattr(detector.backend, "session", None)
    try:
        return session.get_session_options().intra_op_num_threads if session else None
    except AttributeError:
        return None


def bench_pipeline(detector: Detector, seconds: float = 20.0, memory_minutes: float = 0.0,
                   progress: Callable[[str], None] = lambda _: None,
                   rounds: int = 4, ceiling: Detector | None = None) -> dict[str, Any]:
    """`seconds` of pure inference and `seconds` of the saturated agent, in `rounds` pairs taken
    one after the other (pure, agent, pure, agent...), so a shared machine's changing load
    hits both sides of each ratio alike; `fps_ratio` is the median of the pairs' ratios.

    `ceiling`, the same model in a session with other settings (the library's default: every
    core for the model alone), is timed in each round too: `fps_ratio_vs_ceiling` is the agent
    against the fastest the model runs with nothing else on the machine."""
    images = _frames()
    broker = BenchBroker()
    rounds = max(1, rounds)
    try:
        pairs: list[tuple[float, dict[str, Any]]] = []
        ceilings: list[float] = []
        for k in range(rounds):
            progress(f"round {k + 1}/{rounds}: pure inference")
            pure_k = pure_inference(detector, images, seconds / rounds)
            if ceiling is not None:
                progress(f"round {k + 1}/{rounds}: pure inference, ceiling session")
                ceilings.append(pure_inference(ceiling, images, seconds / rounds))
            progress(f"round {k + 1}/{rounds}: saturated, a camera at {2 * pure_k:.0f} fps")
            pairs.append((pure_k, run_agent(detector, broker, {
                "fast": lambda f=2 * pure_k: MemorySource("fast", images, f)},
                seconds / rounds, f"bench-sat{k}")))
        ratios = [sat["fps"] / pure_k for pure_k, sat in pairs]
        vs_ceiling = [sat["fps"] / c for (_, sat), c in zip(pairs, ceilings, strict=False)]
        pure_fps = statistics.mean(pure_k for pure_k, _ in pairs)
        pure_ms = 1000.0 / pure_fps
        saturated = _pool([sat for _, sat in pairs])
        progress("real time: one camera at 30 fps")
        one = run_agent(detector, broker, {
            "cam": lambda: MemorySource("cam", images, 30.0)}, seconds, "bench-rt1")
        progress("real time: two cameras at 30 fps")
        two = run_agent(detector, broker, {
            n: (lambda n=n: MemorySource(n, images, 30.0)) for n in ("cam1", "cam2")},
            seconds, "bench-rt2")
        memory = None
        if memory_minutes > 0:
            progress(f"memory: {memory_minutes:g} minutes at 30 fps")
            samples: list[tuple[float, float]] = []
            t_start = time.monotonic()
            run_agent(detector, broker, {"mem": lambda: MemorySource("mem", images, 30.0)},
                      memory_minutes * 60, "bench-mem",
                      sample=lambda: samples.append((time.monotonic() - t_start, _rss_mb())))
            first = [r for t, r in samples if t <= 60 + 1.5] or [samples[0][1]]
            last = [r for t, r in samples if t >= samples[-1][0] - 60]
            memory = {"minutes": memory_minutes, "rss_first_minute_mb": statistics.mean(first),
                      "rss_last_minute_mb": statistics.mean(last),
                      "growth_pct": 100 * (statistics.mean(last) / statistics.mean(first) - 1),
                      "rss_max_mb": max(r for _, r in samples)}
    finally:
        broker.stop()
    return {
        "fps_ratio": statistics.median(ratios), "round_ratios": ratios,
        "round_pure_fps": [pure_k for pure_k, _ in pairs],
        "intra_op_threads": intra_op_threads(detector),
        "ceiling": None if ceiling is None else {
            "intra_op_threads": intra_op_threads(ceiling),
            "pure_fps": statistics.mean(ceilings), "round_pure_fps": ceilings,
            "fps_ratio": statistics.median(vs_ceiling), "round_ratios": vs_ceiling},
        "latency_overhead_p50_ms": one["latency_p50_ms"] - pure_ms,
        "latency_overhead_p99_ms": one["latency_p99_ms"] - pure_ms,
        "pure_fps": pure_fps, "pure_ms": pure_ms,
        "broker": broker.kind, "protocol": broker.protocol, "seconds": seconds,
        "saturated": saturated, "realtime_1": one, "realtime_2": two, "memory": memory,
    }


def markdown(r: dict[str, Any]) -> str:
    rows = [("saturated (camera at 2x pure)", r["saturated"]),
            ("real time, 1 camera at 30 fps", r["realtime_1"]),
            ("real time, 2 cameras at 30 fps", r["realtime_2"])]
    out = [f"pure session.run: {r['pure_fps']:.1f} fps ({r['pure_ms']:.2f} ms); broker "
           f"{r['broker']} (MQTT {r['protocol']}); {r['seconds']:g} s per row", "",
           f"fps_ratio {r['fps_ratio']:.3f} (median of rounds: "
           f"{', '.join(f'{x:.3f}' for x in r['round_ratios'])}); latency overhead p50 "
           f"{r['latency_overhead_p50_ms']:.1f} ms, p99 {r['latency_overhead_p99_ms']:.1f} ms"
           + (f"; intra-op threads {r['intra_op_threads']}" if r.get("intra_op_threads")
              is not None else ""),
           "", "| run | fps in | fps processed | / pure | latency p50 | p99 | p50 first third "
           "| p50 last third |", "|---|---|---|---|---|---|---|---|"]
    for name, x in rows:
        out.append(f"| {name} | {x['fps_in']:.1f} | {x['fps']:.1f} | "
                   f"{x['fps'] / r['pure_fps']:.2f} | {x['latency_p50_ms']:.1f} ms | "
                   f"{x['latency_p99_ms']:.1f} ms | {x['latency_first_third_p50_ms']:.1f} ms | "
                   f"{x['latency_last_third_p50_ms']:.1f} ms |")
    c = r.get("ceiling")
    if c:
        out += ["", f"ceiling: session.run with the library's default threads "
                f"({c['intra_op_threads'] or 'every core'}), nothing else running: "
                f"{c['pure_fps']:.1f} fps; the agent against it: {c['fps_ratio']:.3f} (median "
                f"of rounds: {', '.join(f'{x:.3f}' for x in c['round_ratios'])})"]
    if r["memory"]:
        m = r["memory"]
        out += ["", f"memory over {m['minutes']:g} min at 30 fps: RSS first minute "
                f"{m['rss_first_minute_mb']:.1f} MB, last minute {m['rss_last_minute_mb']:.1f} "
                f"MB ({m['growth_pct']:+.2f}%), max {m['rss_max_mb']:.1f} MB"]
    return "\n".join(out)


def chromium_viewer(url: str) -> Callable[[], None]:
    """A headless Chromium showing `url` (the live page polls frames and state itself)."""
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)
    if exe is None:
        raise RuntimeError("no Chromium to watch the live view (apt-get install chromium)")
    profile = tempfile.TemporaryDirectory()
    proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu",
                             "--no-first-run", f"--user-data-dir={profile.name}",
                             "--remote-debugging-port=0", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        profile.cleanup()

    return stop


def bench_live(detector: Detector, seconds: float = 20.0, rounds: int = 4,
               progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """The saturated agent's fps_ratio with its live view watched by a browser and with
    nobody watching (the view off), in `rounds` triples (pure, unwatched, watched) taken one
    after the other so the machine's load hits all alike."""
    images = _frames()
    broker = BenchBroker()
    rows: list[tuple[float, dict[str, Any], dict[str, Any]]] = []
    try:
        for k in range(max(1, rounds)):
            progress(f"round {k + 1}/{rounds}: pure inference")
            pure_k = pure_inference(detector, images, seconds / rounds)
            cam = {"fast": lambda f=2 * pure_k: MemorySource("fast", images, f)}
            progress(f"round {k + 1}/{rounds}: saturated, nobody watching")
            alone = run_agent(detector, broker, cam, seconds / rounds, f"bench-live-a{k}")
            progress(f"round {k + 1}/{rounds}: saturated, a browser on the live view")
            watched = run_agent(detector, broker, cam, seconds / rounds, f"bench-live-w{k}",
                                warmup=4.0, viewer=chromium_viewer)
            rows.append((pure_k, alone, watched))
    finally:
        broker.stop()
    alone_r = [a["fps"] / p for p, a, _ in rows]
    watched_r = [w["fps"] / p for p, _, w in rows]
    return {"fps_ratio_unwatched": statistics.median(alone_r),
            "fps_ratio_watched": statistics.median(watched_r),
            "round_unwatched": alone_r, "round_watched": watched_r,
            "live_fps_drawn": statistics.mean(w["live_fps_drawn"] for _, _, w in rows),
            "pure_fps": statistics.mean(p for p, _, _ in rows), "seconds": seconds,
            "broker": broker.kind}
