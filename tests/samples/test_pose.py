"""The stick-figure sample: keypoints sit on the drawn figure, visibility follows occlusion,
and the dataset is a pure function of the seed."""


import numpy as np
import pytest

from samples.pose.pose import KEYPOINT_FLIP_MAP, KEYPOINT_NAMES, PoseDataset
from tests.samples.runs import run_sample


def _dataset(n=30, seed=0):
    d = PoseDataset()
    d.load_pose(n, 128, 128, seed=seed)
    d.prepare()
    return d


def test_keypoints_lie_on_their_figure_and_visibility_matches_masks():
    d = _dataset()
    seen_hidden = 0
    for i in d.image_ids:
        masks, class_ids = d.load_mask(i)
        kps = d.load_keypoints(i)
        assert kps.shape == (masks.shape[-1], len(KEYPOINT_NAMES), 3)
        assert class_ids.tolist() == [1] * masks.shape[-1]
        full, _ = d._figure_masks(d.image_info[i])
        for n in range(kps.shape[0]):
            for x, y, v in kps[n]:
                if v == 0:
                    assert not (0 <= x < 128 and 0 <= y < 128)
                    continue
                r, c = int(y), int(x)
                assert full[r, c, n], (i, n)           # the joint is on its drawn figure
                assert masks[r, c, n] == (v == 2), (i, n, v)
                seen_hidden += v == 1
    assert seen_hidden > 0


def test_specifications_are_a_pure_function_of_the_seed():
    a, b = _dataset(5, seed=3), _dataset(5, seed=3)
    for i in a.image_ids:
        np.testing.assert_array_equal(a.load_image(i), b.load_image(i))
        np.testing.assert_array_equal(a.load_keypoints(i), b.load_keypoints(i))
    assert not np.array_equal(_dataset(5, seed=4).load_image(0), a.load_image(0))


def test_left_and_right_are_told_apart_by_geometry():
    d = _dataset(20)
    names = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
    for i in d.image_ids:
        for fig in d.image_info[i]["figures"]:
            x = [p[0] for p in fig["points"]]
            assert x[names["left_elbow"]] > x[names["neck"]] > x[names["right_elbow"]]
            assert x[names["left_foot"]] > x[names["pelvis"]] > x[names["right_foot"]]
    for left, right in KEYPOINT_FLIP_MAP:
        assert KEYPOINT_NAMES[left].replace("left", "right") == KEYPOINT_NAMES[right]


# A CI-sized run of samples/pose/train.py: 200 steps of 4 images (about 3.5 minutes on the
# 2-core CI machine). Measured: keypoint AP 0.395, mask mAP@0.5 0.16 (seed 0, 2026-11-28, this
# project's 2-core AMD EPYC; 300 steps gave 0.626 but took 5 minutes of the CI budget). The
# threshold is half of that, so machines and library versions have margin while a broken
# target, loss or decoding (keypoint AP near 0) fails.
QUICK_ARGS = ["--epochs", "2", "--lr-drop-epochs", "1", "--steps-per-epoch", "100",
              "--train-images", "600", "--val-images", "20", "--seed", "0"]
QUICK_STEPS = 200
QUICK_THRESHOLD = 0.2


@pytest.mark.slow
def test_short_seeded_training_reaches_keypoint_ap_threshold(tmp_path, capsys):
    from samples.pose import train

    saved = run_sample(train, QUICK_ARGS, tmp_path, capsys, QUICK_STEPS)
    assert saved["keypoint_AP"] == saved["coco_keypoints"]["AP"]
    print(f"quick pose run: keypoint AP = {saved['keypoint_AP']:.3f}, "
          f"mask mAP@0.5 = {saved['mask_mAP50']:.3f}")
    assert saved["keypoint_AP"] >= QUICK_THRESHOLD
