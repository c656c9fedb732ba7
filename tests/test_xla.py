"""Config.XLA: the train step and detect() compiled by XLA compute what the default graph
computes (same weights, same batch), and model.train runs with it."""

import numpy as np
import pytest


def _models(tmp_path, mode, **overrides):
    import keras

    from mrcnn import model as modellib
    from samples.shapes.train import BACKBONES
    from tests.conftest import TinyConfig

    base = dict(BACKBONES["mini"], NAME="xla", **overrides)
    models = []
    for xla in (False, True):
        config = type("C", (TinyConfig,), dict(base, XLA=xla))()
        keras.utils.set_random_seed(0)
        models.append(modellib.MaskRCNN(mode, config, str(tmp_path)))
    models[1].keras_model.set_weights(models[0].keras_model.get_weights())
    return models


@pytest.mark.slow
def test_xla_train_step_equals_the_default_one(tmp_path):
    import tensorflow as tf

    from mrcnn.data_generator import DataGenerator
    from samples.shapes.shapes import ShapesDataset

    # Fewer proposals than training ROIs: no random subsampling, so both graphs see one set.
    plain, xla = _models(tmp_path, "training", POST_NMS_ROIS_TRAINING=16)
    ds = ShapesDataset()
    ds.load_shapes(4, 128, 128, seed=0)
    ds.prepare()
    batch = DataGenerator(ds, plain.config, batch_size=2, steps=1, seed=0)[0][0]
    results = []
    for model, jit in ((plain, False), (xla, True)):
        model.set_trainable("all", verbose=0)
        trainer = model.compile(0.01, 0.9)
        assert bool(trainer.jit_compile) == jit
        results.append(tf.function(trainer.compute_gradients, jit_compile=jit)(batch))
    (total1, parts1, grads1), (total2, parts2, grads2) = results
    np.testing.assert_allclose(float(total2), float(total1), rtol=1e-4)
    for k in parts1:
        np.testing.assert_allclose(float(parts2[k]), float(parts1[k]), rtol=1e-4, atol=1e-6,
                                   err_msg=k)
    checked = 0
    for g1, g2 in zip(grads1, grads2):
        if g1 is None:
            continue
        scale = max(float(np.abs(g1).max()), 1e-3)
        np.testing.assert_allclose(np.asarray(g2) / scale, np.asarray(g1) / scale, atol=1e-3)
        checked += 1
    assert checked > 50


@pytest.mark.slow
def test_xla_detect_equals_the_default_one_and_train_runs(tmp_path, shapes_datasets):
    plain, xla = _models(tmp_path, "inference", IMAGES_PER_GPU=1,
                         DETECTION_MIN_CONFIDENCE=0.0)
    train, _ = shapes_datasets
    images = [train.load_image(i) for i in train.image_ids[:2]]
    expected, got = plain.detect(images), xla.detect(images)
    for r1, r2 in zip(expected, got):
        assert len(r1["scores"]) > 0
        # Random weights: scores nearly tie, so compare the score lists and the best box.
        np.testing.assert_allclose(np.sort(r2["scores"]), np.sort(r1["scores"]), atol=1e-4)
        np.testing.assert_array_equal(r2["rois"][0], r1["rois"][0])

    trainer = _models(tmp_path, "training")[1]
    trainer.train(train, None, 0.01, epochs=1, layers="heads", verbose=0)
    assert trainer.epoch == 1
