"""Batch inference: COCO results JSON, and an interrupted run resumes to the same file."""

import json

import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.batch_inference import run_batch_inference
from tests.conftest import TinyConfig


class Cfg(TinyConfig):
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0
    IMAGE_RESIZE_MODE = "pad64"


@pytest.fixture
def image_dir(tmp_path):
    import skimage.io

    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, shape in enumerate([(64, 80), (100, 60), (128, 128), (50, 70), (90, 90)]):
        skimage.io.imsave(str(folder / f"im{i}.png"),
                          rng.integers(0, 256, shape + (3,), dtype=np.uint8),
                          check_contrast=False)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_json(tmp_path, image_dir):
    model = modellib.MaskRCNN("inference", Cfg(), str(tmp_path / "logs"))
    full = str(tmp_path / "full.json")
    assert run_batch_inference(model, str(image_dir), full, verbose=0) == full
    resumed = str(tmp_path / "resumed.json")
    assert run_batch_inference(model, str(image_dir), resumed, stop_after=2, verbose=0) is None
    # A kill in the middle of writing leaves a cut-off line: it must be ignored and redone.
    with open(resumed + ".partial.jsonl", "a") as f:
        f.write('{"file_name": "' + str(image_dir / "im2.png") + '", "hei')
    run_batch_inference(model, str(image_dir), resumed, verbose=0)
    a, b = json.load(open(full)), json.load(open(resumed))
    assert a == b
    assert [im["file_name"].split("/")[-1] for im in a["images"]] == \
        [f"im{i}.png" for i in range(5)]
    assert a["images"][1]["height"] == 100 and a["annotations"]
    ann = a["annotations"][0]
    assert set(ann) >= {"image_id", "category_id", "bbox", "score", "segmentation"}
    assert 1 <= ann["category_id"] <= 3 and ann["segmentation"]["size"][0] > 0
    assert not (tmp_path / "resumed.json.partial.jsonl").exists()
