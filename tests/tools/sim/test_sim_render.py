"""Ground truth against pixels: boxes hold their objects, occlusion is measured right."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.tools.sim import ObjectState, Renderer, SyntheticWorld, WorldOptions


def changed(renderer: Renderer, image: np.ndarray) -> np.ndarray:
    """Pixels where a clean frame differs from the empty background."""
    return (image != renderer.background).any(axis=2)


def solo_pixels(renderer: Renderer, state: ObjectState) -> np.ndarray:
    """Pixels one object covers when drawn alone on the clean background."""
    return changed(renderer, renderer.render([state]).image)


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("preset", ["easy", "normal", "hard"])
def test_every_changed_pixel_lies_in_a_visible_box(preset):
    world = SyntheticWorld(WorldOptions.from_preset(preset, seed=11).clean())
    checked = 0
    for i in range(0, 900, 45):
        out, truth = world.render(i)
        inside = np.zeros(out.labels.shape, bool)
        for o in truth.visible():
            x1, y1, x2, y2 = o.box
            inside[y1:y2, x1:x2] = True
        stray = changed(world.renderer, out.image) & ~inside
        assert not stray.any(), f"frame {i}: {stray.sum()} object pixels outside every box"
        checked += len(truth.visible())
    assert checked > 20


@pytest.mark.parametrize("preset", ["easy", "normal", "hard"])
def test_boxes_are_tight_around_their_object_pixels(preset):
    world = SyntheticWorld(WorldOptions.from_preset(preset, seed=12).clean())
    r = world.renderer
    fills = []
    for i in range(0, 900, 90):
        _, states = world.states(i)
        out, truth = world.render(i)
        by_id = {s.track_id: s for s in states}
        for o in truth.visible():
            own = out.labels == (1 + next(k for k, s in enumerate(states)
                                          if s.track_id == o.track_id))
            assert bbox(own) == o.box
            pixels = solo_pixels(r, by_id[o.track_id])
            assert (own & ~pixels).sum() <= 2, "visible pixels must be the object's own pixels"
            if o.occlusion == 0 and o.truncation == 0:
                # Drawn alone, the object's changed pixels span its box (1 px of slack where
                # an object pixel happens to equal the background).
                assert np.abs(np.subtract(bbox(pixels), o.box)).max() <= 1
                x1, y1, x2, y2 = o.box
                fills.append(pixels[y1:y2, x1:x2].mean())
    assert fills and min(fills) > 0.2, "a box much larger than its object"


def make(track_id, cls, x, foot_y, size="medium", colour="red"):
    return ObjectState(track_id, cls, colour, size, x=x, foot_y=foot_y,
                       facing_left=False, moving=False)


@pytest.fixture(scope="module")
def bare() -> Renderer:
    return Renderer(WorldOptions.from_preset("normal", seed=3, occluders=0).clean())


def test_partial_overlap_occlusion_matches_the_mask_overlap(bare):
    car = make(1, "car", 300, 230)
    person = make(2, "person", 330, 260)
    a, b = solo_pixels(bare, car), solo_pixels(bare, person)
    expected = (a & b).sum() / a.sum()
    assert 0.02 < expected < 0.5
    truth = {o.track_id: o for o in bare.render([car, person]).objects}
    assert truth[1].occlusion == pytest.approx(expected, abs=2e-4)
    assert truth[2].occlusion == 0.0


def test_order_is_by_depth_not_by_list_order(bare):
    car = make(1, "car", 300, 230)
    person = make(2, "person", 330, 260)
    one = {o.track_id: o.occlusion for o in bare.render([car, person]).objects}
    two = {o.track_id: o.occlusion for o in bare.render([person, car]).objects}
    assert one == two


def test_object_behind_is_the_occluded_one(bare):
    car = make(1, "car", 300, 250)
    person = make(2, "person", 330, 225)  # further away: behind the car
    a, b = solo_pixels(bare, car), solo_pixels(bare, person)
    truth = {o.track_id: o for o in bare.render([car, person]).objects}
    assert truth[1].occlusion == 0.0
    assert truth[2].occlusion == pytest.approx((a & b).sum() / b.sum(), abs=2e-4)


def test_fully_hidden_object_has_no_box(bare):
    dog = make(1, "dog", 320, 240, size="small")
    truck = make(2, "truck", 320, 250, size="large")
    truth = {o.track_id: o for o in bare.render([dog, truck]).objects}
    assert truth[1].occlusion == 1.0 and truth[1].box is None and truth[1].visible_px == 0
    assert truth[2].occlusion == 0.0


def test_disjoint_objects_do_not_occlude(bare):
    truth = bare.render([make(1, "car", 150, 240), make(2, "car", 500, 260)]).objects
    assert [o.occlusion for o in truth] == [0.0, 0.0]


def test_scenery_occludes_what_stands_behind_it():
    r = Renderer(WorldOptions.from_preset("normal", seed=3, occluders=1).clean())
    no_scenery = Renderer(WorldOptions.from_preset("normal", seed=3, occluders=0).clean())
    occ = r.occluders[0]
    _oy, ox = np.nonzero(occ.mask)
    cx = occ.x0 + float(ox.mean())
    behind = make(1, "person", cx, occ.base_y - 5)
    pixels = solo_pixels(no_scenery, behind)
    scenery = np.zeros_like(pixels)
    h, w = occ.mask.shape
    y1, x1 = max(occ.y0, 0), max(occ.x0, 0)
    y2, x2 = min(occ.y0 + h, r.height), min(occ.x0 + w, r.width)
    scenery[y1:y2, x1:x2] = occ.mask[y1 - occ.y0:y2 - occ.y0, x1 - occ.x0:x2 - occ.x0]
    expected = (pixels & scenery).sum() / pixels.sum()
    [truth] = r.render([behind]).objects
    assert expected > 0 and truth.occlusion == pytest.approx(expected, abs=2e-4)
    in_front = make(1, "person", cx, occ.base_y + 5)
    [truth] = r.render([in_front]).objects
    assert truth.occlusion == 0.0


def test_truncation_at_the_frame_edge(bare):
    car = make(1, "car", 0, 250)  # centred on the left edge: about half outside
    [truth] = bare.render([car]).objects
    _img, mask, area, x0, _ = bare.object_patch(car)
    outside = mask[:, : -x0].sum() / area
    assert truth.truncation == pytest.approx(outside, abs=1e-4)
    assert 0.3 < truth.truncation < 0.7 and truth.box[0] == 0


def test_the_patch_cache_is_bounded_by_bytes_and_frames_do_not_change(monkeypatch):
    """A long-running synthetic camera keeps at most PATCH_CACHE_BYTES of drawn patches;
    what is dropped is drawn again, the same."""
    import edge_agent.tools.sim.render as render

    roomy = SyntheticWorld(WorldOptions.from_preset("normal", seed=3))
    expected = [roomy.render(i)[0].image for i in range(0, 600, 20)]
    monkeypatch.setattr(render, "PATCH_CACHE_BYTES", 256 << 10)
    tight = SyntheticWorld(WorldOptions.from_preset("normal", seed=3))
    for k, i in enumerate(range(0, 600, 20)):
        assert np.array_equal(tight.render(i)[0].image, expected[k]), i
        kept = tight.renderer._patches.values()
        assert tight.renderer._patch_bytes == sum(a.nbytes + m.nbytes for a, m, _ in kept)
        assert tight.renderer._patch_bytes <= 256 << 10
    assert len(roomy.renderer._patches) > len(tight.renderer._patches)
