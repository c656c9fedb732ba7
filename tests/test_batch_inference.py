"""Batch inference: COCO results JSON, and an interrupted run resumes to the same file."""

import json
import os

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


def test_shard_range_covers_every_input_once():
    from mrcnn.batch_inference import shard_range

    for count in (0, 1, 5, 7, 100):
        for n in (1, 2, 3, 8):
            blocks = [shard_range(count, n, i) for i in range(n)]
            assert blocks[0][0] == 0 and blocks[-1][1] == count
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
            sizes = [b - a for a, b in blocks]
            assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="--shard-index must be in"):
        shard_range(5, 3, 3)


@pytest.mark.slow
def test_three_shards_merged_equal_the_unsharded_json(tmp_path, image_dir):
    from mrcnn.batch_inference import main, merge_shards, shard_output

    model = modellib.MaskRCNN("inference", Cfg(), str(tmp_path / "logs"))
    full = str(tmp_path / "full.json")
    run_batch_inference(model, str(image_dir), full, verbose=0)
    out = str(tmp_path / "sharded" / "results.json")
    # Shard 1 (images 1 and 2 of 0..4) is interrupted after one image and resumed.
    assert run_batch_inference(model, str(image_dir), out, verbose=0, num_shards=3,
                               shard_index=1, stop_after=1) is None
    for index in (2, 1, 0):
        written = run_batch_inference(model, str(image_dir), out, verbose=0, num_shards=3,
                                      shard_index=index)
        assert written == shard_output(out, 3, index)
        assert written.endswith(f"results-shard-{index}-of-3.json")
    shards = [json.load(open(shard_output(out, 3, i))) for i in range(3)]
    assert [[im["id"] for im in s["images"]] for s in shards] == [[0], [1, 2], [3, 4]]
    os.rename(shard_output(out, 3, 2), out + ".aside")
    with pytest.raises(FileNotFoundError, match="shard 2 of 3 is missing"):
        merge_shards(out, 3)
    os.rename(out + ".aside", shard_output(out, 3, 2))
    with pytest.raises(FileNotFoundError, match="shard 0 of 2 is missing"):
        merge_shards(out, 2)
    assert main(["--merge", "--output", out, "--num-shards", "3"]) == out
    assert json.load(open(out)) == json.load(open(full))
    with open(out) as a, open(full) as b:
        assert a.read() == b.read()  # same order, byte for byte
