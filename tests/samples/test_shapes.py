"""The shapes sample end to end: a seeded, shortened run of samples/shapes/train.py must reach a
real quality threshold on held-out images, so a regression anywhere in the model, targets,
losses or data path turns CI red."""


import numpy as np
import pytest

from samples.shapes.shapes import ShapesDataset
from tests.samples.runs import run_sample


def test_dataset_is_seeded_and_consistent():
    a, b = ShapesDataset(), ShapesDataset()
    a.load_shapes(5, 128, 128, seed=3)
    b.load_shapes(5, 128, 128, seed=3)
    a.prepare()
    b.prepare()
    for i in a.image_ids:
        np.testing.assert_array_equal(a.load_image(i), b.load_image(i))
        mask, ids = a.load_mask(i)
        assert mask.shape[:2] == (128, 128) and mask.shape[-1] == len(ids) >= 1
        assert set(ids.tolist()) <= {1, 2, 3}
        # Occlusion: no pixel belongs to two instances.
        assert mask.sum(-1).max() <= 1


# 2,000 steps of the sample's model (about 3.5 minutes on the 2-core CI machine). The main
# job's run (36 epochs, README) was at validation mAP@0.5 0.40 after 1,000 steps and 0.72
# after 2,000 (measured, still at the full learning rate), so 0.5 after 2,000 steps ending at
# LR/10 leaves margin for seeds and machines while any real regression falls far below it.
QUICK_ARGS = ["--backbone", "mini", "--epochs", "10", "--lr-drop-epochs", "2",
              "--steps-per-epoch", "200", "--train-images", "2000", "--val-images", "30",
              "--seed", "0"]
QUICK_STEPS = 2000
QUICK_THRESHOLD = 0.5


@pytest.mark.slow
def test_short_seeded_training_reaches_map_threshold(tmp_path, capsys):
    from samples.shapes import train

    saved = run_sample(train, QUICK_ARGS, tmp_path, capsys, QUICK_STEPS)
    assert 0 <= saved["coco_mask_AP"] <= 1
    print(f"quick shapes run: mask mAP@0.5 = {saved['mask_mAP50']:.3f}")
    assert saved["mask_mAP50"] >= QUICK_THRESHOLD
