"""Training that survives: SIGKILL mid-epoch then resume (same final weights and step count as an
uninterrupted run), non-finite batches skipped and reported then stopping the run, truncated
newest checkpoints skipped by find_last, failed saves leaving the previous checkpoint intact,
KEEP_CHECKPOINTS, and the resumable state's round trip."""

import errno
import glob
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import keras
import numpy as np
import pytest

from mrcnn import checkpoints, training
from mrcnn import weights as weights_io
from mrcnn.config import LOSS_NAMES, Config
from mrcnn.data_generator import DataGenerator
from samples.shapes.shapes import ShapesDataset
from samples.shapes.train import mini_backbone, mini_backbone_shapes

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


class MiniConfig(Config):
    """The mini ResNet-FPN on 64 px images: a training step takes well under a second on CPU."""

    NAME = "mini"
    NUM_CLASSES = 4
    IMAGES_PER_GPU = 2
    BACKBONE = staticmethod(mini_backbone)
    COMPUTE_BACKBONE_SHAPE = staticmethod(mini_backbone_shapes)
    MASK_POOL_SIZE = 7
    MASK_SHAPE = [14, 14]
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    TRAIN_ROIS_PER_IMAGE = 16
    POST_NMS_ROIS_TRAINING = 64
    POST_NMS_ROIS_INFERENCE = 32
    PRE_NMS_LIMIT = 256
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 5
    DETECTION_MAX_INSTANCES = 10
    STEPS_PER_EPOCH = 4
    VALIDATION_STEPS = 1
    TRAIN_BN = True  # BatchNorm moving statistics change every step: they must resume too
    LEARNING_RATE = 0.01
    CHECKPOINT_EVERY_STEPS = 2


def shapes(count, seed):
    dataset = ShapesDataset()
    dataset.load_shapes(count, 128, 128, seed=seed)  # resized to 64 px by the config
    dataset.prepare()
    return dataset


# ---------------------------------------------------------------------- kill -9 and resume
CHILD = textwrap.dedent("""
    import json, sys, time
    import tensorflow as tf
    # One thread and deterministic kernels: two runs of the same steps give the same bits.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    import keras
    import numpy as np
    from mrcnn import model as modellib
    from tests.test_training_resume import MiniConfig, shapes

    logs, out, mode, pause = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("training", MiniConfig(), logs)
    start = [0, 0]
    if mode == "resume":
        model.load_weights(model.find_last(), by_name=True, verbose=0)
        start = [model.resume_state.epoch, model.resume_state.step]

    class Count(keras.callbacks.Callback):
        steps = 0
        def on_train_batch_end(self, batch, logs=None):
            Count.steps += 1
            time.sleep(pause)  # widens the window in which the parent kills this process

    # No validation data: one traced step fewer (validation does not change the weights).
    model.train(shapes(24, 0), None, MiniConfig.LEARNING_RATE, epochs=3, layers="all",
                seed=3, workers=1, verbose=0, custom_callbacks=[Count()])
    np.savez(out, *model.keras_model.get_weights())
    print(json.dumps({"steps_run": Count.steps, "start": start, "log_dir": model.log_dir,
                      "iterations": int(model.trainer.optimizer.iterations.numpy())}))
""")


def _child(tmp_path, logs, out, mode, pause=0.0):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    return subprocess.Popen([sys.executable, str(script), str(logs), str(out), mode, str(pause)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _result(proc, timeout=900):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-2000:] + err[-5000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    steps = MiniConfig.STEPS_PER_EPOCH
    reference = _child(tmp_path, tmp_path / "ref", tmp_path / "ref.npz", "full")
    victim = _child(tmp_path, tmp_path / "run", tmp_path / "unused.npz", "full", pause=0.5)
    # Kill -9 as soon as a mid-epoch checkpoint exists.
    deadline = time.time() + 900
    state = None
    while time.time() < deadline and victim.poll() is None:
        found = glob.glob(str(tmp_path / "run" / "mini*" / "resume_mini.h5"))
        if found:
            state = checkpoints.read_training_state(found[0])
            if state.step > 0:
                break
        time.sleep(0.05)
    assert victim.poll() is None, victim.communicate()[1][-5000:]
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    resume_path = found[0]
    state = checkpoints.read_training_state(resume_path)
    assert 0 < state.step < steps and state.epoch < 3, state.position  # killed mid-epoch
    killed_at = state.epoch * steps + state.step

    resumed = _result(_child(tmp_path, tmp_path / "run", tmp_path / "resumed.npz", "resume"))
    ref = _result(reference)
    # It continued at the checkpoint's step, in the same run directory, and ran exactly the
    # remaining steps: the step count (and the optimizer's iteration count) is identical.
    assert resumed["start"] == [state.epoch, state.step]
    assert resumed["log_dir"] == os.path.dirname(resume_path)
    assert resumed["steps_run"] == 3 * steps - killed_at
    assert ref["steps_run"] == ref["iterations"] == resumed["iterations"] == 3 * steps
    # Bit-identical final weights (deterministic single-threaded kernels; see README).
    a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz")
    assert len(a.files) == len(b.files) > 100
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # Same files as the uninterrupted run: matterport's per-epoch files and the resume state.
    names = sorted(os.listdir(resumed["log_dir"]))
    assert [n for n in names if n.endswith(".h5")] == \
        [f"mask_rcnn_mini_000{e}.h5" for e in (1, 2, 3)] + ["resume_mini.h5"]
    assert sorted(os.listdir(ref["log_dir"])) == names
    assert checkpoints.read_training_state(resume_path).position == (3, 0)


# ---------------------------------------------------------------------- non-finite steps
class InfShapes(ShapesDataset):
    """Shapes whose images in `bad` are all +inf."""

    bad = set()

    def load_image(self, image_id):
        image = super().load_image(image_id)
        if image_id in self.bad:
            return np.full(image.shape, np.inf, np.float32)
        return image


class GuardConfig(MiniConfig):
    NAME = "guard"
    CHECKPOINT_EVERY_STEPS = 1
    MAX_NONFINITE_STEPS = 2


@pytest.mark.slow
def test_nonfinite_batches_are_skipped_then_stop_the_run(tmp_path, caplog):
    from mrcnn import model as modellib

    config = GuardConfig()
    train = InfShapes()
    train.load_shapes(40, 128, 128, seed=0)
    train.prepare()
    # Batches are a pure function of the seed: make global batches 2 (epoch 1, step 3), 5 and
    # 6 (epoch 2, steps 2 and 3) hold the bad images. 40 images = 20 batches per pass, so
    # those images appear in no other batch of these two epochs.
    gen = DataGenerator(train, config, seed=11)
    ids = {b: [gen._image_at(2 * b + i) for i in range(2)] for b in range(8)}
    train.bad = set(ids[2] + ids[5] + ids[6])
    assert not train.bad & set(ids[0] + ids[1] + ids[3] + ids[4] + ids[7])

    model = modellib.MaskRCNN("training", config, str(tmp_path))
    with caplog.at_level(logging.WARNING), \
            pytest.raises(training.NonFiniteLossError) as err:
        model.train(train, None, config.LEARNING_RATE, epochs=3, layers="all", seed=11,
                    workers=1, verbose=0)
    # The isolated bad step was skipped and reported with its images.
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipped")]
    assert skipped[0].startswith("Skipped step 3 (epoch 1, step 3 of 4)")
    for i in ids[2]:
        assert f"image_id {i} (source 'shapes'" in skipped[0]
    # Two bad steps in a row stop the run, naming the step, the losses and the images.
    message = str(err.value)
    assert "step 7 (epoch 2, step 3 of 4)" in message and "MAX_NONFINITE_STEPS = 2" in message
    for name in ("loss",) + LOSS_NAMES:
        assert f"{name}=" in message
    for i in ids[6]:
        assert f"image_id {i} (source 'shapes'" in message
    # No bad step was applied: 7 steps, 3 skipped.
    assert int(model.trainer.optimizer.iterations.numpy()) == 4
    # The last good checkpoint (after step 5 = epoch 2, step 1) is the newest, and holds the
    # model's current (finite) weights, BatchNorm statistics included.
    last = model.find_last()
    assert last == checkpoints.resume_file(model.log_dir, "guard") and last in message
    assert checkpoints.read_training_state(last).position == (1, 1)
    assert os.path.isfile(os.path.join(model.log_dir, "mask_rcnn_guard_0001.h5"))
    with h5py.File(last, "r") as f:
        for layer in ("mrcnn_mask", "bn_conv1", "fpn_p2"):
            saved = [np.asarray(f[layer][n]) for n in f[layer].attrs["weight_names"]]
            current = model.keras_model.get_layer(layer).get_weights()
            assert len(saved) == len(current) > 0
            for s, c in zip(saved, current):
                assert np.all(np.isfinite(c))
                np.testing.assert_array_equal(s, c)


DISTRIBUTED = textwrap.dedent("""
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from mrcnn import model as modellib
    from mrcnn.data_generator import DataGenerator
    from tests.test_training_resume import MiniConfig, shapes

    class C(MiniConfig):
        NAME = "dist"
        GPU_COUNT = 2          # replicas
        IMAGES_PER_GPU = 1     # per replica: global batch 2

    config = C()
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    model = modellib.MaskRCNN("training", config, sys.argv[1], strategy=strategy)
    model.set_trainable("all", verbose=0)
    trainer = model.compile(0.01, 0.9)
    good = DataGenerator(shapes(4, 0), config, batch_size=2, steps=1, seed=0)[0][0]
    bad = dict(good, input_image=good["input_image"].copy())
    bad["input_image"][1] = np.inf  # only the second replica's image
    step = tf.function(lambda x: strategy.run(trainer.train_step, args=(x,)))

    def run(batch):
        def shard(ctx):
            i = ctx.replica_id_in_sync_group
            return {k: v[i:i + 1] for k, v in batch.items()}
        step(strategy.experimental_distribute_values_from_function(shard))

    before = model.keras_model.get_weights()
    run(bad)
    # Neither replica applied the update: weights, BatchNorm statistics, optimizer unchanged.
    assert int(trainer.optimizer.iterations.numpy()) == 0
    assert float(trainer.step_finite.numpy()) == 0.0
    assert sorted(trainer.step_image_ids.numpy().tolist()) == sorted(
        good["input_image_meta"][:, 0].astype(int).tolist())
    assert np.isnan(trainer.step_losses.numpy()[0])
    for a, b in zip(before, model.keras_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    run(good)
    assert int(trainer.optimizer.iterations.numpy()) == 1
    assert float(trainer.step_finite.numpy()) == 1.0
    changed = sum(not np.array_equal(a, b) for a, b in zip(before, model.keras_model.get_weights()))
    print("changed", changed, "of", len(before))
    assert changed > 100
""")


@pytest.mark.slow
def test_nonfinite_guard_agrees_across_replicas(tmp_path):
    """A MirroredStrategy step over 2 logical CPUs where one replica's image is inf: no
    replica applies the update (the finiteness flag is reduced over replicas)."""
    script = tmp_path / "dist.py"
    script.write_text(DISTRIBUTED)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-6000:]
    assert "changed" in out.stdout


@pytest.mark.slow
def test_nonfinite_step_is_skipped_eagerly(tmp_path):
    """train_step run eagerly (as under run_eagerly=True) on a batch with an all-inf image:
    every ROI is NaN, and PyramidROIAlign must still pool them (it used to drop their rows,
    a reshape error) so that the guard can skip the step; a finite batch then trains."""
    from mrcnn import model as modellib

    config = MiniConfig()
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    model.set_trainable("all", verbose=0)
    trainer = model.compile(0.01, 0.9)
    good = DataGenerator(shapes(4, 0), config, batch_size=2, steps=1, seed=0)[0][0]
    bad = dict(good, input_image=good["input_image"].copy())
    bad["input_image"][1] = np.inf
    before = model.keras_model.get_weights()
    trainer.train_step(bad)
    assert int(trainer.optimizer.iterations.numpy()) == 0
    assert float(trainer.step_finite.numpy()) == 0.0
    for a, b in zip(before, model.keras_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    trainer.train_step(good)
    assert int(trainer.optimizer.iterations.numpy()) == 1
    assert float(trainer.step_finite.numpy()) == 1.0


# ---------------------------------------------------------------------- checkpoint files
def _tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="dense_a")(inputs)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="dense_b")(x))


def _run_dir(tmp_path, name="tiny"):
    run = tmp_path / f"{name}20260101T0000"
    run.mkdir(parents=True, exist_ok=True)
    return run


def test_truncated_newest_checkpoint_is_skipped_by_find_last(tmp_path, caplog):
    net = _tiny_model()
    run = _run_dir(tmp_path)
    for e in (1, 2, 3):
        weights_io.save_weights_h5(net, run / f"mask_rcnn_tiny_{e:04d}.h5")
    newest = run / "mask_rcnn_tiny_0003.h5"
    data = newest.read_bytes()
    newest.write_bytes(data[:len(data) // 2])  # truncated, as by a crash mid-copy
    with caplog.at_level(logging.WARNING):
        found = checkpoints.find_last_checkpoint(str(tmp_path), "tiny")
    assert found == str(run / "mask_rcnn_tiny_0002.h5")
    assert str(newest) in caplog.text and "Skipping checkpoint" in caplog.text
    assert checkpoints.checkpoint_problem(str(newest)).startswith("unreadable")
    # A file h5py opens but that is no weights file, and a damaged resume file, are skipped too.
    with h5py.File(run / "mask_rcnn_tiny_0004.h5", "w") as f:
        f.create_group("something")
    (run / "resume_tiny.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert checkpoints.find_last_checkpoint(str(tmp_path), "tiny") == found
    assert "mask_rcnn_tiny_0004.h5: no layer names" in caplog.text
    assert "resume_tiny.h5" in caplog.text
    # Nothing good left in the newest run: an older run is used.
    older = tmp_path / "tiny20250101T0000"
    older.mkdir()
    weights_io.save_weights_h5(net, older / "mask_rcnn_tiny_0007.h5")
    for e in (1, 2):
        (run / f"mask_rcnn_tiny_{e:04d}.h5").write_bytes(b"")
    assert checkpoints.find_last_checkpoint(str(tmp_path), "tiny") == \
        str(older / "mask_rcnn_tiny_0007.h5")


def _raise_enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["dataset", "fsync", "rename"])
def test_failed_save_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch, where):
    net = _tiny_model(0)
    path = tmp_path / "mask_rcnn_tiny_0001.h5"
    weights_io.save_weights_h5(net, path)
    before = [w.copy() for w in net.get_weights()]
    newer = _tiny_model(1)
    assert not np.array_equal(newer.get_weights()[0], before[0])
    if where == "dataset":  # the disk fills up after the first array was written
        calls = {"n": 0}
        original = h5py.Group.create_dataset

        def create_dataset(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] > 1:
                _raise_enospc()
            return original(self, *args, **kwargs)

        monkeypatch.setattr(h5py.Group, "create_dataset", create_dataset)
    elif where == "fsync":
        monkeypatch.setattr(os, "fsync", _raise_enospc)
    else:
        monkeypatch.setattr(os, "replace", _raise_enospc)
    with pytest.raises(OSError) as err:
        checkpoints.write_checkpoint(newer, str(path))
    assert err.value.errno == errno.ENOSPC
    assert str(path) in str(err.value) and "No space left on device" in str(err.value)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left behind
    fresh = _tiny_model(2)
    weights_io.load_weights(fresh, str(path), verbose=0)
    for a, b in zip(fresh.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_unwritable_log_dir_gives_a_clear_error(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    with pytest.raises(OSError, match="could not write weights file .*not_a_dir"):
        checkpoints.write_checkpoint(_tiny_model(), str(blocker / "run" / "w.h5"))


def test_keep_checkpoints_keeps_the_newest_epoch_files(tmp_path):
    net = _tiny_model()
    run = _run_dir(tmp_path)
    later = run / "mask_rcnn_tiny_0009.h5"  # from an earlier run in this directory: kept
    weights_io.save_weights_h5(net, later)
    saver = training.CheckpointCallback(net, str(run / "mask_rcnn_tiny_{epoch:04d}.h5"),
                                        keep=2, name="tiny")
    for epoch in range(4):
        saver.on_epoch_end(epoch)
    assert sorted(os.listdir(run)) == ["mask_rcnn_tiny_0003.h5", "mask_rcnn_tiny_0004.h5",
                                       later.name]
    keep_all = training.CheckpointCallback(net, str(run / "mask_rcnn_tiny_{epoch:04d}.h5"),
                                           name="tiny")
    for epoch in range(2):
        keep_all.on_epoch_end(epoch)
    assert len(os.listdir(run)) == 5


# ---------------------------------------------------------------------- the training state
def _trainer(net, batch_size=2):
    trainer = training.TrainingModel(net, {}, 0.0, batch_size=batch_size)
    trainer.compile(keras.optimizers.SGD(0.1, momentum=0.9))
    return trainer


def test_training_state_round_trip_and_restore(tmp_path):
    net = _tiny_model()
    trainer = _trainer(net)
    rng = np.random.default_rng(0)
    for v in trainer.optimizer.variables:
        if "momentum" in v.path:
            v.assign(rng.normal(size=v.shape).astype("float32"))
    trainer.optimizer.iterations.assign(17)
    seeds = training._rng_variables(net)
    assert len(seeds) == 1 and seeds[0].path.endswith("seed_generator_state")  # the Dropout's
    seeds[0].assign(np.array([5, 9]))
    state = training.capture_state(trainer, epoch=2, step=3, seed=41, steps_per_epoch=4,
                                   weights_file="mask_rcnn_tiny_0002.h5")
    run = _run_dir(tmp_path)
    path = checkpoints.resume_file(str(run), "tiny")
    checkpoints.write_checkpoint(net, path, state)
    back = checkpoints.read_training_state(path)
    assert (back.epoch, back.step, back.seed, back.steps_per_epoch, back.batch_size) == \
        (2, 3, 41, 4, 2)
    assert back.trainable == [v.path for v in net.trainable_variables]
    for (p1, a1), (p2, a2) in zip(state.optimizer + state.rng, back.optimizer + back.rng):
        assert p1 == p2
        np.testing.assert_array_equal(a1, a2)
    # The resume file is also an ordinary Keras 2 layout weights file.
    fresh = _tiny_model(3)
    weights_io.load_weights(fresh, path, verbose=0)
    np.testing.assert_array_equal(fresh.get_weights()[0], net.get_weights()[0])

    # Into a fresh trainer of the same layers: momentum, iteration count and seed state.
    other = _trainer(fresh)
    other.optimizer.learning_rate.assign(0.5)
    assert training.restore_state(other, back)
    assert int(other.optimizer.iterations.numpy()) == 17
    for a, b in zip(other.optimizer.variables, trainer.optimizer.variables):
        if "momentum" in a.path:
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(other.optimizer.learning_rate.numpy()) == 0.5  # train()'s LR is kept
    np.testing.assert_array_equal(training._rng_variables(fresh)[0].numpy(), [5, 9])

    # Other trainable layers: the optimizer is not restored (warning), nothing breaks.
    partial = _tiny_model(4)
    partial.get_layer("dense_a").trainable = False
    assert not training.restore_state(_trainer(partial), back)


def test_state_for_weights_pairs_epoch_files_with_their_state(tmp_path):
    net = _tiny_model()
    trainer = _trainer(net)
    run = _run_dir(tmp_path)
    epoch_file = str(run / "mask_rcnn_tiny_0002.h5")
    resume = checkpoints.resume_file(str(run), "tiny")
    checkpoints.write_checkpoint(net, epoch_file)
    checkpoints.write_checkpoint(net, resume, training.capture_state(
        trainer, 2, 0, 1, 4, weights_file="mask_rcnn_tiny_0002.h5"))
    assert checkpoints.state_for_weights(epoch_file, "tiny").position == (2, 0)
    # find_last: the per-epoch file wins at equal position; a mid-epoch state is further.
    assert checkpoints.find_last_checkpoint(str(tmp_path), "tiny") == epoch_file
    checkpoints.write_checkpoint(net, resume, training.capture_state(trainer, 2, 3, 1, 4))
    assert checkpoints.find_last_checkpoint(str(tmp_path), "tiny") == resume
    assert checkpoints.state_for_weights(resume, "tiny").position == (2, 3)
    assert checkpoints.state_for_weights(epoch_file, "tiny") is None  # not written with it
    assert checkpoints.state_for_weights(str(tmp_path / "elsewhere.h5"), "tiny") is None


def test_data_generator_first_step_continues_the_epoch():
    config = MiniConfig()
    dataset = shapes(12, 0)
    full = DataGenerator(dataset, config, seed=5)
    part = DataGenerator(dataset, config, seed=5, first_step=3)
    assert len(full) == 4 and len(part) == 1
    full.epoch = part.epoch = 2
    for key, value in full[3][0].items():
        np.testing.assert_array_equal(part[0][0][key], value, err_msg=key)
    with pytest.raises(ValueError, match="first_step"):
        DataGenerator(dataset, config, first_step=4)


def test_resume_position(caplog):
    """The data seed and first step a resumed train() uses, and the warnings when the run's
    seed, STEPS_PER_EPOCH or BATCH_SIZE differ from the checkpoint's."""
    state = checkpoints.TrainingState(epoch=2, step=3, seed=41, steps_per_epoch=4, batch_size=2)
    assert training.resume_position(None, 7, 4, 2) == (7, 0)
    with caplog.at_level(logging.WARNING):
        assert training.resume_position(state, None, 4, 2) == (41, 3)
        assert training.resume_position(state, 41, 4, 2) == (41, 3)
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        assert training.resume_position(state, 5, 4, 2) == (5, 3)
    assert "seed=5 differs from the checkpoint's data seed 41" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        # Fewer steps per epoch than the checkpoint's step: start the next epoch at step 0.
        assert training.resume_position(state, None, 3, 4) == (41, 0)
    assert "STEPS_PER_EPOCH=4, BATCH_SIZE=2; now 3, 4" in caplog.text
