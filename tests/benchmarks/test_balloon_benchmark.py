"""benchmarks/balloon.py: the shapes stage's photo backgrounds hold no balloon."""

import os

import numpy as np
import pytest

from tests.samples.test_balloon import _real_dir, needs_real


@needs_real
@pytest.mark.slow
def test_background_crops_hold_no_balloon(tmp_path):
    import skimage.io

    from benchmarks.balloon import write_background_crops
    from samples.balloon.balloon import BalloonDataset

    crops = write_background_crops(_real_dir(), str(tmp_path), per_photo=2, tries=100)
    files = sorted(os.listdir(tmp_path))
    assert len(files) == len(crops) > 40
    assert all(skimage.io.imread(tmp_path / f).shape == (128, 128, 3) for f in files)
    train = BalloonDataset()
    train.load_balloon(_real_dir(), "train")
    train.prepare()
    for image_id, y, x, scale in crops:
        # The crop's area in the full-size photo, less a pixel of rounding at each edge,
        # against the full-size masks: no balloon pixel.
        masks, _ = train.load_mask(image_id)
        y1, x1 = int(np.ceil(y / scale)) + 1, int(np.ceil(x / scale)) + 1
        y2, x2 = int((y + 128) / scale) - 1, int((x + 128) / scale) - 1
        assert y2 > y1 and x2 > x1
        assert not masks[y1:y2, x1:x2].any(), (image_id, y, x)
