import keras
import numpy as np
import pytest

from mrcnn.layers import PyramidROIAlign
from mrcnn.ops.image_meta import compose_image_meta
from tests.conftest import random_boxes
from tests.helpers import assert_config_round_trip
from tests.reference.numpy_ref import crop_sample, fpn_level, roi_align

IMAGE = 512


def _inputs(rng, batch=2, n=16, channels=3):
    sizes = [IMAGE // s for s in (4, 8, 16, 32)]
    maps = [rng.normal(size=(batch, s, s, channels)).astype(np.float32) for s in sizes]
    # Box sizes spanning all four levels (level 5 needs a box side of at least 317 px).
    boxes = np.stack([random_boxes(rng, n, min_size=0.02, max_size=0.98) for _ in range(batch)])
    boxes[0, -1] = 0  # a zero-padding row
    meta = np.stack([compose_image_meta(0, (IMAGE, IMAGE, 3), (IMAGE, IMAGE, 3),
                                        (0, 0, IMAGE, IMAGE), 1.0, np.ones(4))
                     for _ in range(batch)]).astype(np.float32)
    return boxes, meta, maps


@pytest.mark.parametrize("sampler", ["crop_and_resize", "gather"])
@pytest.mark.parametrize("mode,ratio", [("paper", 2), ("paper", 1), ("paper", 3),
                                        ("matterport", 1)])
def test_matches_numpy_definition(mode, ratio, sampler):
    rng = np.random.default_rng(0)
    boxes, meta, maps = _inputs(rng)
    pool = 7
    layer = PyramidROIAlign((pool, pool), mode=mode, sampling_ratio=ratio, sampler=sampler)
    out = np.asarray(layer(boxes, meta, maps))
    assert out.shape == (2, 16, pool, pool, 3)
    levels_seen = set()
    for b in range(boxes.shape[0]):
        for i in range(boxes.shape[1]):
            level = fpn_level(boxes[b, i], IMAGE * IMAGE)
            levels_seen.add(level)
            fm = maps[level - 2][b]
            if mode == "paper":
                ref = roi_align(fm, boxes[b, i], pool, ratio)
            else:
                ref = crop_sample(fm, boxes[b, i], pool)
            # float32 sample coordinates on maps up to 128 cells: max abs error observed ~3e-5
            np.testing.assert_allclose(out[b, i], ref, atol=1e-4, rtol=0)
    assert levels_seen == {2, 3, 4, 5}


@pytest.mark.parametrize("sampler", ["crop_and_resize", "gather"])
@pytest.mark.parametrize("mapper", ["matterport", "torchvision"])
def test_non_finite_boxes_keep_their_rows(mapper, sampler):
    # A step on a non-finite batch (which the training guard skips) gives NaN and inf boxes,
    # an inverted box a NaN level: the output keeps every row, finite, and the other boxes'
    # rows are unchanged (before: CropAndResize's error, or rows dropped, a reshape error).
    rng = np.random.default_rng(1)
    boxes, meta, maps = _inputs(rng)
    bad = boxes.copy()
    bad[0, 2] = np.nan
    bad[1, 5] = [0.1, np.inf, 0.5, np.inf]
    bad[1, 7] = [0.5, 0.5, 0.2, 0.2]  # inverted: negative area
    layer = PyramidROIAlign((7, 7), level_mapper=mapper, sampler=sampler,
                            mode="torchvision" if mapper == "torchvision" else "paper")
    good_out = np.asarray(layer(boxes, meta, maps))
    bad_out = np.asarray(layer(bad, meta, maps))
    assert bad_out.shape == good_out.shape == (2, 16, 7, 7, 3)
    assert np.all(np.isfinite(bad_out))
    keep = np.ones((2, 16), bool)
    keep[0, 2] = keep[1, 5] = keep[1, 7] = False
    np.testing.assert_array_equal(bad_out[keep], good_out[keep])


def test_hand_computed_single_bin():
    # A 2x2 map [[0, 1], [2, 3]]: the box covering it, pooled to one bin with 2x2 samples at
    # (0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75) -> values 0.75, 1.25, 1.75, 2.25.
    fm = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32).reshape(1, 2, 2, 1)
    from mrcnn.layers.roi_align import roi_align_level_graph

    out = roi_align_level_graph(fm, np.array([[0, 0, 1, 1]], np.float32), np.array([0]),
                                (1, 1), "paper", 2)
    assert np.asarray(out).item() == pytest.approx(1.5)


@pytest.mark.parametrize("mode,mapper", [("torchvision", "torchvision"), ("paper", "matterport")])
def test_gather_sampler_equals_crop_and_resize_and_compiles_with_xla(mode, mapper):
    import tensorflow as tf

    rng = np.random.default_rng(1)
    boxes, meta, maps = _inputs(rng, channels=4)
    layers = {s: PyramidROIAlign((7, 7), mode=mode, level_mapper=mapper, sampler=s)
              for s in ("crop_and_resize", "gather")}
    ref = np.asarray(layers["crop_and_resize"](boxes, meta, maps))
    # Sample coordinates are computed in another order (float32, maps up to 128 cells): as in
    # test_matches_numpy_definition, up to ~3e-5 apart.
    np.testing.assert_allclose(layers["gather"](boxes, meta, maps), ref, rtol=0, atol=1e-4)
    compiled = tf.function(lambda b, m, f: layers["gather"](b, m, f), jit_compile=True)
    np.testing.assert_allclose(compiled(boxes, meta, maps), ref, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="sampler"):
        PyramidROIAlign((7, 7), sampler="nearest")


def test_config_round_trip_and_symbolic_shape():
    layer = PyramidROIAlign((14, 14), mode="matterport", name="roi_align_mask")
    assert_config_round_trip(layer)
    assert_config_round_trip(PyramidROIAlign((7, 7), sampler="gather"))
    boxes = keras.Input((None, 4))
    meta = keras.Input((16,))
    maps = [keras.Input((None, None, 8)) for _ in range(4)]
    assert tuple(layer(boxes, meta, maps).shape) == (None, None, 14, 14, 8)
