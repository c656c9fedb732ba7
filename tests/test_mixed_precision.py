"""Config.MIXED_PRECISION: low-precision convolutions, float32 geometry, NMS and losses, and
dynamic loss scaling that gives back the true gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import model as modellib
from mrcnn.builder import TRAINING_OUTPUTS
from mrcnn.data_generator import DataGenerator
from tests.conftest import TinyConfig

FLOAT32_LAYERS = ["ROI", "proposal_targets", "roi_align_classifier", "roi_align_mask",
                  "norm_gt_boxes", "anchors", "mrcnn_class", "mrcnn_mask", "rpn_class_logits",
                  "rpn_class", "rpn_bbox", "output_rois"]


def _config(precision, **overrides):
    return type("MP", (TinyConfig,), {"NAME": "mp", "MIXED_PRECISION": precision,
                                      **overrides})()


# TensorFlow 2.21's oneDNN float16 filter gradients (Conv2DBackpropFilter) are about 100x
# slower than float32 on CPUs with avx512_fp16 (a TinyConfig step: 87 s against 0.7 s on an
# Intel Xeon), so the float16 training step runs a narrower model at 64 px (about 4 s a step).
SMALL = {"IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 64, "TRAIN_ROIS_PER_IMAGE": 8,
         "TOP_DOWN_PYRAMID_SIZE": 64, "FPN_CLASSIF_FC_LAYERS_SIZE": 64,
         "MASK_HEAD_CHANNELS": 64, "RPN_CONV_CHANNELS": 64}


def _batch(shapes_datasets, config):
    return DataGenerator(shapes_datasets[0], config, batch_size=2, steps=1, seed=0)[0][0]


@pytest.mark.parametrize("precision,low", [("mixed_float16", "float16"),
                                           ("mixed_bfloat16", "bfloat16")])
def test_layer_dtypes_and_the_global_policy(tmp_path, precision, low):
    model = modellib.MaskRCNN("training", _config(precision), str(tmp_path))
    assert keras.config.dtype_policy().name == "float32"  # building changed nothing global
    km = model.keras_model
    for name in ("conv1", "res4a_branch2a", "fpn_p2", "mrcnn_class_conv1", "mrcnn_mask_conv1"):
        assert km.get_layer(name).compute_dtype == low, name
    assert km.get_layer("rpn_model").get_layer("rpn_conv_shared").compute_dtype == low
    assert km.get_layer("rpn_model").get_layer("rpn_class_xxx").compute_dtype == "float32"
    for name in FLOAT32_LAYERS:
        assert km.get_layer(name).compute_dtype == "float32", name
    assert all(w.dtype == "float32" for w in km.weights)


@pytest.mark.slow
def test_mixed_float16_training_step(tmp_path, shapes_datasets):
    """Every output the losses read is float32; loss scaling is in use and settles, the steps
    update the weights, and then the unscaled gradients equal float32 gradients at the same
    weights (the RPN's, which depend on no sampled ROI) to float16 accuracy."""
    mixed = modellib.MaskRCNN("training", _config("mixed_float16", **SMALL), str(tmp_path))
    full = modellib.MaskRCNN("training", _config(None, **SMALL), str(tmp_path))
    batch = _batch(shapes_datasets, mixed.config)

    outputs = dict(zip(TRAINING_OUTPUTS, mixed.keras_model(batch, training=False)))
    for name in ("rpn_class_logits", "rpn_class", "rpn_bbox", "mrcnn_class", "mrcnn_mask",
                 "rpn_rois", "output_rois", "target_bbox", "target_mask"):
        assert outputs[name].dtype == tf.float32, name

    mixed.set_trainable("all", verbose=0)
    trainer = mixed.compile(0.01, 0.9)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    before = [np.copy(w) for w in mixed.keras_model.get_layer("rpn_model").get_weights()]
    step = tf.function(trainer.train_step)
    for _ in range(6):  # steps with overflowing gradients are skipped while the scale settles
        logs = step((batch,))
    assert np.isfinite(float(logs["loss"]))
    assert float(trainer.optimizer.dynamic_scale) < trainer.optimizer.initial_scale
    after = mixed.keras_model.get_layer("rpn_model").get_weights()
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))

    # Unscaled gradients at the same weights as a float32 model.
    full.keras_model.set_weights(mixed.keras_model.get_weights())
    full.set_trainable("all", verbose=0)
    grads = {}
    for key, model in (("mixed", mixed), ("full", full)):
        trainer = model.trainer if key == "mixed" else model.compile(0.01, 0.9)
        total, parts, g = tf.function(trainer.compute_gradients)(batch)
        assert total.dtype == tf.float32
        names = [v.path for v in model.keras_model.trainable_variables]
        grads[key] = (dict(zip(names, g)), {k: float(v) for k, v in parts.items()})
    for loss in ("rpn_class_loss", "rpn_bbox_loss"):
        np.testing.assert_allclose(grads["mixed"][1][loss], grads["full"][1][loss], rtol=1e-2)
    for name in ("rpn_class_raw/kernel", "rpn_bbox_pred/kernel", "rpn_conv_shared/kernel"):
        g_mixed = np.asarray(grads["mixed"][0][name])
        g_full = np.asarray(grads["full"][0][name])
        scale = np.abs(g_full).max()
        assert scale > 0
        # float16 keeps 11 significant bits; summed over a whole feature map the gradients
        # agree to about 0.5% (norm) here. A ReLU near zero can flip in float16 and route a
        # few elements differently (CI once saw 312 of 1.2M kernel entries off by 14% of the
        # max), so the check is on the norm and on the share of entries: a wrong or missing
        # unscaling would be off by the loss scale (2**15 and below) everywhere.
        error = np.linalg.norm(g_mixed - g_full) / np.linalg.norm(g_full)
        assert error < 0.02, (name, error)
        outliers = np.mean(np.abs(g_mixed - g_full) > 0.05 * scale)
        assert outliers < 1e-3, (name, outliers)


def test_mixed_bfloat16_detect_matches_float32(tmp_path, tiny_config):
    """Same weights: the mixed model's RPN outputs follow the float32 model's within bfloat16
    accuracy, and detect() returns its usual dtypes."""
    mixed = modellib.MaskRCNN("inference", _config("mixed_bfloat16"), str(tmp_path))
    full = modellib.MaskRCNN("inference", _config(None), str(tmp_path))
    full.keras_model.set_weights(mixed.keras_model.get_weights())
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(2)]
    for model in (mixed, full):
        results = model.detect(images)
        assert results[0]["rois"].dtype == np.int32
        assert results[0]["masks"].dtype == bool
        assert results[0]["scores"].dtype == np.float32
    molded, metas, _ = mixed.mold_inputs(images)
    anchors = np.broadcast_to(mixed.get_anchors(molded[0].shape), (2,) + mixed.get_anchors(
        molded[0].shape).shape)
    inputs = [molded, metas, anchors]
    out_mixed = [np.asarray(o) for o in mixed.keras_model(inputs)]
    out_full = [np.asarray(o) for o in full.keras_model(inputs)]
    assert out_mixed[5].dtype == out_mixed[6].dtype == np.float32
    # bfloat16 keeps 8 significant bits: errors of about 1% through ~50 layers.
    assert np.abs(out_mixed[5] - out_full[5]).mean() < 0.01  # rpn_class probabilities
    bbox_error = np.linalg.norm(out_mixed[6] - out_full[6]) / np.linalg.norm(out_full[6])
    assert bbox_error < 0.02  # rpn_bbox deltas
