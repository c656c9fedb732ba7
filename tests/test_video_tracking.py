"""mrcnn.video.tracking: the tracker on synthetic scenes with ground-truth ids, scored by a
direct CLEAR MOT implementation (tests/reference/mot.py). No TensorFlow, no model."""

import numpy as np
import pytest

from mrcnn.ops.masks import compute_overlaps_masks
from mrcnn.video.tracking import Tracker, box_iou, mask_boxes
from tests.reference import mot
from tests.reference import numpy_ref as ref
from tests.reference.video_scene import Obj, detections, scene

SHAPE = (120, 200)


def run_tracker(results, **kw):
    """Tracks every frame; reported = detections whose track is ever confirmed (what the
    pipeline writes, back-filled). Returns per frame {track id: mask}."""
    tracker = Tracker(**kw)
    per_frame = []
    for r in results:
        ids = tracker.update(r["rois"], r["class_ids"], r["masks"])
        per_frame.append((ids, r["masks"]))
    return [{int(t): m[..., k] for k, t in enumerate(ids) if tracker.is_confirmed(t)}
            for ids, m in per_frame]


def test_box_iou_matches_the_reference():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 50, (6, 2))
    a = np.concatenate([a, a + rng.uniform(0, 30, (6, 2))], 1)
    b = rng.uniform(0, 50, (4, 2))
    b = np.concatenate([b, b + rng.uniform(0, 30, (4, 2))], 1)
    b[0] = b[0, [0, 1, 0, 1]]  # an empty box
    got = box_iou(a, b)
    want = np.array([[ref.iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_mask_boxes_and_mask_iou_cost_match_ops_masks():
    images, gts, fulls = scene([Obj(1, 1, (255, 0, 0), 20, (30, 30), (0, 0)),
                                Obj(2, 2, (0, 255, 0), 24, (40, 45), (0, 0)),
                                Obj(3, 3, (0, 0, 255), 30, (80, 150), (0, 0))], 1, SHAPE)
    masks = np.stack([gts[0][g] for g in (1, 2, 3)], -1)
    boxes, nonempty = mask_boxes(np.concatenate([masks, np.zeros(SHAPE + (1,), bool)], -1))
    assert list(nonempty) == [True, True, True, False]
    for k in range(3):
        rows, cols = np.flatnonzero(masks[..., k].any(1)), np.flatnonzero(masks[..., k].any(0))
        assert list(boxes[k]) == [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    tracker = Tracker(predict_motion=False, min_hits=1)
    tracker.update(boxes[:3], [1, 1, 1], masks)  # one class: every pair is comparable
    shifted = np.roll(masks, (2, 3), axis=(0, 1))
    got = tracker.cost_matrix(mask_boxes(shifted)[0], [1, 1, 1], shifted)
    np.testing.assert_allclose(got, compute_overlaps_masks(masks, shifted), atol=1e-12)


def _blob(y, x, size=10, shape=(60, 60)):
    m = np.zeros(shape + (1,), bool)
    m[y:y + size, x:x + size] = True
    return np.array([[y, x, y + size, x + size]]), m


def test_class_consistency_min_hits_and_max_age():
    tracker = Tracker(min_hits=3, max_age=2)
    box, m = _blob(10, 10)
    assert tracker.update(box, [1], m)[0] == 1
    assert not tracker.is_confirmed(1)
    # Same place, other class: never the same track.
    assert tracker.update(box, [2], m)[0] == 2
    # Track 1 missed once while tentative: deleted. Track 2 continues.
    assert tracker.update(box, [2], m)[0] == 2 and not tracker.is_confirmed(2)
    assert tracker.update(box, [2], m)[0] == 2 and tracker.is_confirmed(2)
    # Class 1 again beside track 2: a new track, not the deleted track 1.
    assert list(tracker.update(np.concatenate([box, box]), [2, 1],
                               np.concatenate([m, m], -1))) == [2, 3]
    for _ in range(2):  # two misses (max_age = 2): track 2 survives
        tracker.update(np.zeros((0, 4)), [], np.zeros((60, 60, 0), bool))
    assert tracker.update(box, [2], m)[0] == 2
    for _ in range(3):  # three misses: deleted, the next detection starts track 4
        tracker.update(np.zeros((0, 4)), [], np.zeros((60, 60, 0), bool))
    assert tracker.update(box, [2], m)[0] == 4


def test_box_fallback_when_masks_are_absent_or_empty():
    tracker = Tracker(min_hits=1)
    box, m = _blob(10, 10)
    assert tracker.update(box, [1])[0] == 1  # no masks at all
    assert tracker.update(box + 1, [1], np.zeros((60, 60, 1), bool))[0] == 1  # empty mask
    assert tracker.update(box + 2, [1], np.roll(m, 2, axis=(0, 1)))[0] == 1
    assert tracker.update(box + 40, [1])[0] == 2  # far away: IoU 0 and beyond the gate


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="max_age"):
        Tracker(max_age=-1)
    with pytest.raises(ValueError, match="min_hits"):
        Tracker(min_hits=0)
    with pytest.raises(ValueError, match="class ids"):
        Tracker().update(np.zeros((2, 4)), [1])
    with pytest.raises(ValueError, match="masks must be"):
        Tracker().update(np.zeros((2, 4)), [1, 1], np.zeros((5, 5, 3), bool))


def test_non_crossing_objects_keep_their_ids_despite_noise():
    objects = [Obj(1, 1, (255, 60, 60), 20, (25, 20), (0, 4)),
               Obj(2, 2, (60, 255, 60), 22, (60, 180), (0, -4)),
               Obj(3, 1, (60, 60, 255), 18, (92, 40), (0.5, 3))]
    images, gts, fulls = scene(objects, 30, SHAPE)
    results, _ = detections(objects, gts, fulls, seed=1, drop={(10, 1), (20, 3)},
                            false_positives=[(15, 3, (5, 150, 20, 165)),
                                             (16, 1, (100, 150, 115, 165))])
    hyps = run_tracker(results)
    m = mot.clear_mot(gts, hyps)
    assert m["id_switches"] == 0
    assert all(len(h) == 1 for h in m["assignment"].values()), m["assignment"]
    assert m["false_positives"] == 0  # one-frame false positives are never confirmed
    assert m["misses"] == 2  # the two dropped detections
    assert m["mota"] == pytest.approx(1 - 2 / m["gt"])


@pytest.mark.parametrize("velocities", [((0, 5), (0, -5)), ((3, 5), (-3, 5))],
                         ids=["head-on", "x-crossing"])
def test_crossing_objects_at_most_one_switch(velocities):
    starts = [(60, 25), (60, 175)] if velocities[0][0] == 0 else [(20, 30), (100, 30)]
    objects = [Obj(1, 1, (255, 60, 60), 20, starts[0], velocities[0]),
               Obj(2, 1, (60, 255, 60), 20, starts[1], velocities[1])]
    images, gts, fulls = scene(objects, 30, SHAPE)
    overlap = [np.logical_and(*(f[g] for g in (1, 2))).any() for f in fulls]
    assert any(overlap)  # they do cross
    results, _ = detections(objects, gts, fulls, seed=2)
    m = mot.clear_mot(gts, run_tracker(results))
    assert m["id_switches"] <= 1
    assert m["mota"] > 0.8


def test_occluded_object_keeps_its_id_with_max_age_3():
    objects = [Obj(1, 2, (255, 200, 0), 12, (60, 20), (0, 4)),
               Obj(2, 1, (0, 200, 255), 16, (20, 170), (2, 0))]
    pillar = (0, 90, 120, 104)
    images, gts, fulls = scene(objects, 40, SHAPE, occluders=[pillar])
    results, gids = detections(objects, gts, fulls, seed=3)
    # Object 1 is undetected (hidden, or under half visible) for 3 frames in a row.
    undetected = [t for t in range(40) if 1 not in gids[t]]
    assert undetected == [18, 19, 20], undetected
    assert 1 not in gts[19]  # wholly hidden in the middle frame
    hyps = run_tracker(results, max_age=3)
    m = mot.clear_mot(gts, hyps)
    assert len(m["assignment"][1]) == 1 and m["id_switches"] == 0, m["switches"]
    assert len({t for h in hyps for t in h}) == 2  # one track per object, nothing else
    # With max_age = 2 the track is gone when the object comes back: a second id.
    hyps = run_tracker(results, max_age=2)
    assert len(mot.clear_mot(gts, hyps)["assignment"][1]) == 2


def test_tracker_needs_neither_tensorflow_nor_cv2():
    import os
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from mrcnn.video import Tracker\n"
            "m = np.zeros((20, 20, 1), bool); m[2:8, 2:8] = True\n"
            "t = Tracker(min_hits=1)\n"
            "assert t.update([[2, 2, 8, 8]], [1], m)[0] == 1\n"
            "assert t.update([[3, 3, 9, 9]], [1], np.roll(m, 1, (0, 1)))[0] == 1\n"
            "print(sorted(k for k in ('tensorflow', 'keras', 'cv2') if k in sys.modules))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"
