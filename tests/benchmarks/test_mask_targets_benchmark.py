"""benchmarks/mask_targets.py on the real balloon photos: mrcnn's mask targets, pasted back as
detect() pastes a mask, give the GT masks back closer than matterport's."""

import json

import pytest

from tests.samples.test_balloon import _real_dir, needs_real


@needs_real
@pytest.mark.slow
def test_paper_targets_paste_back_closer_than_matterports(tmp_path):
    from benchmarks.mask_targets import main

    out = tmp_path / "m.json"
    main(["--dataset", _real_dir(), "--subsets", "val", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["instances"] == 50 and result["image_size"] == 320
    iou = result["mean_iou"]
    # [all, h < 16, 16-40, >= 40]: every mean IoU is a fraction; mrcnn's targets ("paper")
    # from mini masks paste back better than matterport's, for every size of balloon.
    assert all(0 < v <= 1 for row in iou.values() for v in row)
    paper, matterport = iou["GT box / paper / mini"], iou["GT box / matterport / mini"]
    assert paper[0] >= 0.97 and paper[0] > matterport[0] + 0.01, iou
    assert paper[3] > matterport[3] + 0.01, iou
