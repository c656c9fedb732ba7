"""SavedModel export: in-graph molding matches NumPy molding, and the exported model,
reloaded in a fresh process, returns model.detect's detections."""

import os
import subprocess
import sys

import numpy as np
import pytest

from mrcnn import inference
from mrcnn import model as modellib
from mrcnn.export import export_saved_model, mold_images_graph
from tests.conftest import TinyConfig

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


class ExportConfig(TinyConfig):
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0


@pytest.mark.parametrize("mode,shape", [("square", (128, 128)), ("square", (100, 150)),
                                        ("pad64", (90, 130)), ("none", (70, 64))])
def test_graph_molding_matches_numpy(mode, shape):
    config = ExportConfig()
    config.IMAGE_RESIZE_MODE = mode
    config.IMAGE_MIN_DIM = 96
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    ref, ref_meta, ref_window = inference.mold_inputs([image], config)
    got, meta, window = (np.asarray(x) for x in mold_images_graph(image[None], config))
    assert got.shape == ref.shape
    np.testing.assert_array_equal(window, ref_window)
    np.testing.assert_allclose(meta, ref_meta, atol=1e-5)
    diff = np.abs(got - ref)
    y1, x1, y2, x2 = ref_window[0]
    inner = diff[0, y1 + 2:y2 - 2, x1 + 2:x2 - 2]
    # Resampling: TF and skimage bilinear agree inside; skimage darkens the outermost pixels.
    assert inner.max() <= 1.0 + 1e-4 and diff.mean() < 1.0  # one grey level (rounding)


SERVE = """
import sys, numpy as np, tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
images = np.load(sys.argv[2])
out = served.serve(tf.constant(images))
np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})
print("signatures", sorted(served.signatures))
"""


def serve_in_fresh_process(model, image, tmp_path):
    """Exports `model` as a SavedModel, reloads it in a fresh Python process (SERVE) and runs
    its `serve` signature on one image. Returns (the process's stdout, its outputs as npz)."""
    export_dir = export_saved_model(model, str(tmp_path / "exported"))
    np.save(tmp_path / "images.npy", image[None])
    script = tmp_path / "serve.py"
    script.write_text(SERVE)
    out = subprocess.run([sys.executable, str(script), export_dir, str(tmp_path / "images.npy"),
                          str(tmp_path / "out.npz")], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout, np.load(tmp_path / "out.npz")


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet50", "resnext50_32x4d"])
def test_exported_model_reloads_and_matches_detect(tmp_path, backbone):
    config = type("Export", (ExportConfig,), {"BACKBONE": backbone})()
    model = modellib.MaskRCNN("inference", config, str(tmp_path / "logs"))
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    expected = model.detect([image])[0]
    stdout, got = serve_in_fresh_process(model, image, tmp_path)
    assert "serving_default" in stdout  # what TF Serving calls
    n = int(got["num_detections"][0])
    assert n == len(expected["class_ids"]) > 0
    np.testing.assert_array_equal(got["boxes"][0, :n], expected["rois"])
    np.testing.assert_array_equal(got["class_ids"][0, :n], expected["class_ids"])
    np.testing.assert_allclose(got["scores"][0, :n], expected["scores"], atol=1e-5)
    assert got["masks"].shape == (1, config.DETECTION_MAX_INSTANCES, 128, 128)
    for k in range(n):
        a, b = got["masks"][0, k], expected["masks"][:, :, k]
        # IoU >= 0.9. Masks under 16 px (random weights give some 1-4 px boxes) are left
        # out: there the two pastings' rounding of a boundary pixel alone is 10-50% of the mask.
        union = np.logical_or(a, b).sum()
        if union >= 16:
            assert np.logical_and(a, b).sum() / union >= 0.9, (k, union)


@pytest.mark.slow
def test_tflite_conversion_needs_select_tf_ops(tmp_path):
    from mrcnn.export import convert_to_tflite

    model = modellib.MaskRCNN("inference", ExportConfig(), str(tmp_path / "logs"))
    saved = export_saved_model(model, str(tmp_path / "saved"))
    with pytest.raises(Exception, match="CropAndResize"):
        convert_to_tflite(saved, str(tmp_path / "builtin.tflite"), select_tf_ops=False)
    path = convert_to_tflite(saved, str(tmp_path / "flex.tflite"))
    assert os.path.getsize(path) > 1_000_000


def test_graph_keypoint_decoding_agrees_with_numpy():
    from mrcnn.export import keypoints_from_heatmaps_graph
    from mrcnn.ops.keypoints import heatmaps_to_keypoints

    rng = np.random.default_rng(4)
    s, k = 56, 3
    boxes = np.array([[10.0, 20.0, 66.0, 76.0], [0.0, 5.5, 37.5, 120.25],
                      [3.2, 7.9, 203.1, 95.0]], np.float32)
    # Smooth single-peak maps (a Gaussian bump per keypoint).
    yy, xx = np.mgrid[0:s, 0:s]
    maps = np.zeros((3, s, s, k), np.float32)
    for i in range(3):
        for j in range(k):
            cy, cx = rng.uniform(3, s - 3, 2)
            maps[i, :, :, j] = 8 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6.0)
    want = heatmaps_to_keypoints(maps, boxes)
    got = np.asarray(keypoints_from_heatmaps_graph(maps[None], boxes[None]))[0]
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        cell_x, cell_y = (x2 - x1) / s, (y2 - y1) / s
        assert np.all(np.abs(got[i, :, 0] - want[i, :, 0]) <= max(cell_x, 1.0))
        assert np.all(np.abs(got[i, :, 1] - want[i, :, 1]) <= max(cell_y, 1.0))
    # Scores: the peak logit after each resampling (different sizes): within 10%.
    np.testing.assert_allclose(got[..., 2], want[..., 2], rtol=0.1)
