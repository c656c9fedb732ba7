"""Seeded end-to-end training on the tiny config: finite, decreasing losses, one trace of the
train and test steps, per-epoch checkpoints, resume from find_last(), and frozen BatchNorm
staying frozen."""

import os

import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.training import (
    LAYER_REGEX,
    TrainingModel,
    find_last_checkpoint,
    parse_checkpoint_path,
)
from tests.conftest import TinyConfig


class TrainConfig(TinyConfig):
    NAME = "tinytrain"
    STEPS_PER_EPOCH = 10
    VALIDATION_STEPS = 2
    LEARNING_RATE = 0.002


@pytest.mark.slow
def test_thirty_steps_then_resume(tmp_path, shapes_datasets, monkeypatch):
    train, val = shapes_datasets
    config = TrainConfig()
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    bn_before = [np.copy(w) for w in model.keras_model.get_layer("bn3a_branch2a").weights]
    # Python code in a step runs only while TensorFlow traces it: count the traces.
    traces = {"train": 0, "test": 0}
    for kind in traces:
        original = getattr(TrainingModel, f"{kind}_step")

        def counted(self, data, kind=kind, original=original):
            traces[kind] += 1
            return original(self, data)

        monkeypatch.setattr(TrainingModel, f"{kind}_step", counted)
    history = model.train(train, val, config.LEARNING_RATE, epochs=3, layers="all", seed=7,
                          workers=1, verbose=0)
    assert traces == {"train": 1, "test": 1}  # 30 steps and 3 validations, one trace each
    losses = history.history
    for name in ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
                 "mrcnn_bbox_loss", "mrcnn_mask_loss", "val_loss"):
        assert len(losses[name]) == 3 and np.all(np.isfinite(losses[name])), name
    assert losses["loss"][-1] < losses["loss"][0]
    # TRAIN_BN = False: BatchNorm neither trains gamma/beta nor updates its statistics.
    for before, after in zip(bn_before, model.keras_model.get_layer("bn3a_branch2a").weights):
        np.testing.assert_array_equal(before, np.asarray(after))
    # One checkpoint per epoch, named by the scheme, and the resumable state beside them.
    files = sorted(os.listdir(model.log_dir))
    ckpts = [f for f in files if f.endswith(".h5")]
    assert ckpts == [f"mask_rcnn_tinytrain_000{i}.h5" for i in (1, 2, 3)] + \
        ["resume_tinytrain.h5"]
    assert not [f for f in files if f.endswith(".tmp")]
    assert any(f.startswith("events") or os.path.isdir(os.path.join(model.log_dir, f))
               for f in files)  # TensorBoard logs

    # Resume: a new model finds the last checkpoint and continues at epoch 4, same directory.
    resumed = modellib.MaskRCNN("training", config, str(tmp_path))
    last = resumed.find_last()
    assert last.endswith("mask_rcnn_tinytrain_0003.h5")
    resumed.load_weights(last, by_name=True)
    assert resumed.epoch == 3 and resumed.log_dir == model.log_dir
    # The resumable state written with that file: position, data seed, optimizer state.
    state = resumed.resume_state
    assert (state.epoch, state.step, state.seed) == (3, 0, 7)
    iterations = [v for p, v in state.optimizer if p.endswith("/iteration")]
    assert int(iterations[0]) == 30 == int(model.trainer.optimizer.iterations.numpy())
    w_trained = model.keras_model.get_layer("mrcnn_mask").get_weights()[0]
    np.testing.assert_array_equal(resumed.keras_model.get_layer("mrcnn_mask").get_weights()[0],
                                  w_trained)
    history = resumed.train(train, val, config.LEARNING_RATE, epochs=4, layers="heads", seed=8,
                            workers=1, verbose=0)
    assert history.epoch == [3]
    assert find_last_checkpoint(str(tmp_path), "tinytrain").endswith("_0004.h5")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_train_steps_see_the_global_batches_in_order(tmp_path, shapes_datasets, workers):
    """Over epochs and the two train() calls of a learning-rate drop, step k trains on the
    DataGenerator's global batch k (one endless input, not an iterator per epoch)."""
    import keras

    from mrcnn.data_generator import DataGenerator

    train, val = shapes_datasets

    class Config3(TrainConfig):
        STEPS_PER_EPOCH = 3

    config = Config3()
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(model.trainer.step_image_ids.numpy().tolist())

    for epochs, seed in ((2, 11), (3, 12)):
        model.train(train, val, 0.001, epochs=epochs, layers="heads", seed=seed,
                    workers=workers, verbose=0, custom_callbacks=[Record()])
    ref = {seed: DataGenerator(train, config, seed=seed) for seed in (11, 12)}
    want = [ref[11].batch(k)["input_image_meta"][:, 0].astype(int).tolist() for k in range(6)]
    want += [ref[12].batch(k)["input_image_meta"][:, 0].astype(int).tolist()
             for k in range(6, 9)]
    assert seen == want


def _tiny_keras_model():
    import keras

    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))


def test_checkpoint_naming_scheme(tmp_path):
    from mrcnn.weights import save_weights_h5

    path = tmp_path / "coco20261124T0930" / "mask_rcnn_coco_0012.h5"
    assert parse_checkpoint_path(path, "coco") == (str(path.parent), 12)
    assert parse_checkpoint_path(path, "balloon") is None
    assert parse_checkpoint_path(tmp_path / "x.h5") is None
    # find_last: exact NAME match ("coco" must not pick "coco_inference" runs), newest stamp.
    net = _tiny_keras_model()
    for d, epochs in (("coco20261124T0930", [1, 2]), ("coco20261125T0800", [1]),
                      ("coco_inference20271201T0000", [9]), ("coco20281201T0000", [])):
        os.makedirs(tmp_path / d)
        for e in epochs:
            save_weights_h5(net, tmp_path / d / f"mask_rcnn_{d[:-13]}_{e:04d}.h5")
    assert find_last_checkpoint(str(tmp_path), "COCO").endswith(
        os.path.join("coco20261125T0800", "mask_rcnn_coco_0001.h5"))
    with pytest.raises(FileNotFoundError, match="balloon"):
        find_last_checkpoint(str(tmp_path), "balloon")


def test_layer_presets_select_the_right_layers(tmp_path):
    config = TrainConfig()
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    heads = model.set_trainable("heads", verbose=0)
    assert "rpn_conv_shared" in heads and "mrcnn_mask" in heads and "fpn_p2" in heads
    assert not any(n.startswith("res") for n in heads)
    assert model.keras_model.get_layer("rpn_model").trainable
    four = model.set_trainable("4+", verbose=0)
    assert "res4a_branch2a" in four and "res3a_branch2a" not in four
    assert not any(n.startswith("bn") for n in four)  # frozen BatchNorm (TRAIN_BN=False)
    assert set(LAYER_REGEX) == {"heads", "3+", "4+", "5+", "all"}
    conv1 = model.keras_model.get_layer("conv1")
    model.set_trainable(r"conv1|mrcnn\_.*", verbose=0)
    assert conv1.trainable and not model.keras_model.get_layer("fpn_p2").trainable
