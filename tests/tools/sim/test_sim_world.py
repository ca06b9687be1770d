"""The synthetic world: determinism, recurring scenes, presets, the `sim` command."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from edge_agent.cli import main
from edge_agent.tools.sim import FrameTruth, SyntheticWorld, WorldOptions
from edge_agent.tools.sim.clip import read_truth


def digest(img: np.ndarray) -> str:
    return hashlib.sha256(img.tobytes()).hexdigest()


def test_same_seed_same_bytes_in_any_order():
    opts = WorldOptions.from_preset("hard", seed=5)
    indices = [0, 37, 599, 600, 1234]
    first = [digest(SyntheticWorld(opts).frame(i)) for i in indices]
    world = SyntheticWorld(opts)
    second = [digest(world.frame(i)) for i in reversed(indices)][::-1]
    assert first == second


def test_different_seeds_differ():
    a = SyntheticWorld(WorldOptions.from_preset("normal", seed=1)).frame(10)
    b = SyntheticWorld(WorldOptions.from_preset("normal", seed=2)).frame(10)
    assert digest(a) != digest(b)


def test_sim_command_twice_gives_identical_files(tmp_path, capsys):
    for name in ("a", "b"):
        rc = main(["sim", "--seed", "3", "--seconds", "2", "--preset", "normal",
                   "--out", str(tmp_path / name), "--no-progress"])
        assert rc == 0
    for f in ("video.mp4", "truth.jsonl", "meta.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    truths = list(read_truth(tmp_path / "a" / "truth.jsonl"))
    assert [t.frame for t in truths] == list(range(60))
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["frames"] == 60 and meta["options"]["seed"] == 3


def test_sim_video_decodes_to_the_rendered_frames(tmp_path):
    import cv2

    main(["sim", "--seed", "4", "--seconds", "1", "--fps", "10", "--out", str(tmp_path),
          "--codec", "FFV1", "--no-progress"])
    cap = cv2.VideoCapture(str(tmp_path / "video.mkv"))
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=4, fps=10))
    for i in range(10):
        ok, frame = cap.read()
        assert ok, i
        assert np.array_equal(frame, world.frame(i)), f"frame {i} is not lossless"
    cap.release()


def test_truth_json_round_trip():
    _, truth = SyntheticWorld(WorldOptions.from_preset("normal", seed=1)).render(123)
    assert truth.objects, "seed 1 frame 123 should show objects"
    assert FrameTruth.from_json(json.loads(truth.to_line())) == truth


def test_entries_and_exits_happen():
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=2, fps=10))
    seen = [{o.track_id for o in world.render(i)[1].visible()} for i in range(0, 200)]
    entered = set().union(*seen[1:]) - seen[0]
    left = seen[0] - seen[-1]
    assert entered and left
    moving = [o for o in world.render(50)[1].objects if o.state == "moving"]
    assert moving


def kinds(world: SyntheticWorld, n: int) -> list[tuple[str, int | None]]:
    return [world.segment_kind(k) for k in range(n)]


RECUR = dict(segment_seconds=2.0, fps=10.0, recurring_fraction=0.4,
             near_duplicate_fraction=0.3)


def test_recurring_scene_shows_the_same_content():
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=8, **RECUR).clean())
    segs = kinds(world, 12)
    k, (_, base) = next((k, s) for k, s in enumerate(segs) if s[0] == "recurring")
    per = world.frames_per_segment
    for local in (0, 7, per - 1):
        a, ta = world.render(base * per + local)
        b, tb = world.render(k * per + local)
        assert tb.scene.scene_id == ta.scene.scene_id == f"s{base}"
        assert [(o.cls, o.colour, o.box) for o in ta.objects] == \
               [(o.cls, o.colour, o.box) for o in tb.objects]
        assert np.array_equal(a.labels, b.labels)
        assert np.array_equal(a.image, b.image)


def test_recurring_scene_differs_only_by_light_and_noise():
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=8, **RECUR))
    segs = kinds(world, 12)
    k, (_, base) = next((k, s) for k, s in enumerate(segs) if s[0] == "recurring")
    per = world.frames_per_segment
    a, _ = world.render(base * per + 5)
    b, _ = world.render(k * per + 5)
    assert not np.array_equal(a.image, b.image)
    assert np.array_equal(a.labels, b.labels)


def test_near_duplicate_adds_exactly_one_small_object():
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=8, **RECUR).clean())
    segs = kinds(world, 16)
    near = [(k, b) for k, (kind, b) in enumerate(segs) if kind == "near_duplicate"]
    assert near, segs
    per = world.frames_per_segment
    for k, base in near:
        _, ta = world.render(base * per + 3)
        _, tb = world.render(k * per + 3)
        extra = [o for o in tb.objects if o.track_id == tb.scene.added_track_id]
        assert len(extra) == 1 and extra[0].size == "small"
        assert extra[0].box is not None, "the new object must be visible"
        assert len(tb.objects) == len(ta.objects) + 1
        assert tb.scene.kind == "near_duplicate" and tb.scene.scene_id != ta.scene.scene_id
        same = [(o.cls, o.full_box) for o in tb.objects if o is not extra[0]]
        assert same == [(o.cls, o.full_box) for o in ta.objects]


def preset_stats(preset: str) -> dict[str, float]:
    heights, occlusion, counts, noise, contrast, lum = [], [], [], [], [], []
    for seed in range(3):
        world = SyntheticWorld(WorldOptions.from_preset(preset, seed=seed))
        r = world.renderer
        for i in range(0, 1200, 40):
            _, states = world.states(i)
            out, truth = world.render(i)
            vis = truth.visible()
            counts.append(len(vis))
            heights += [o.box[3] - o.box[1] for o in vis]
            occlusion += [o.occlusion for o in vis]
            t = i / world.options.fps
            a = out.image.astype(np.int16)
            noise.append((a - r.render(states, t, i + 1).image).std() / np.sqrt(2))
            empty = r.render([], t, i).image.astype(np.int16)
            if (out.labels > 0).any():
                contrast.append(np.abs(a - empty)[out.labels > 0].mean())
            lum.append(a.mean())
    return dict(height=float(np.median(heights)), occlusion=float(np.mean(occlusion)),
                objects=float(np.mean(counts)), noise=float(np.mean(noise)),
                contrast=float(np.mean(contrast)), darkest=float(min(lum)))


@pytest.mark.slow
def test_presets_get_harder_in_the_direction_they_say():
    easy, normal, hard = (preset_stats(p) for p in ("easy", "normal", "hard"))
    assert easy["height"] > normal["height"] > hard["height"]
    assert easy["objects"] < normal["objects"] < hard["objects"]
    assert easy["occlusion"] < normal["occlusion"] < hard["occlusion"]
    assert easy["noise"] < normal["noise"] < hard["noise"]
    assert easy["contrast"] > normal["contrast"] > hard["contrast"]
    assert easy["darkest"] > normal["darkest"] > hard["darkest"]


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown preset 'nightmare'; valid presets: easy"):
        WorldOptions.from_preset("nightmare")
