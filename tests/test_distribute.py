"""A MirroredStrategy step over 2 logical CPU devices equals a single-device step on the same
global batch (loss, every gradient, and the clipped SGD update). Runs in a subprocess: logical devices must be
configured before TensorFlow starts."""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

SCRIPT = textwrap.dedent("""
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from mrcnn import model as modellib
    from mrcnn.data_generator import DataGenerator
    from samples.shapes.shapes import ShapesDataset
    from tests.conftest import TinyConfig

    class C(TinyConfig):
        NAME = "dist"
        GPU_COUNT = 2          # replicas
        IMAGES_PER_GPU = 1     # per replica: global batch 2
        POST_NMS_ROIS_TRAINING = 16   # < TRAIN_ROIS_PER_IMAGE: no random ROI subsampling
        TRAIN_ROIS_PER_IMAGE = 32

    config = C()
    ds = ShapesDataset(); ds.load_shapes(4, 128, 128, seed=0); ds.prepare()
    batch = DataGenerator(ds, config, batch_size=2, steps=1, seed=0)[0][0]
    keras.utils.set_random_seed(0)
    single = modellib.MaskRCNN("training", config, sys.argv[1], strategy=tf.distribute.get_strategy())
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dist = modellib.MaskRCNN("training", config, sys.argv[1], strategy=strategy)
    dist.keras_model.set_weights(single.keras_model.get_weights())
    single.set_trainable("all", verbose=0); dist.set_trainable("all", verbose=0)
    t1 = single.compile(0.01, 0.9); t2 = dist.compile(0.01, 0.9)

    total1, parts1, grads1 = tf.function(t1.compute_gradients)(batch)
    def shard(ctx):
        i = ctx.replica_id_in_sync_group
        return {k: v[i:i + 1] for k, v in batch.items()}
    inputs = strategy.experimental_distribute_values_from_function(shard)
    total2, parts2, grads2 = tf.function(lambda x: strategy.run(t2.compute_gradients, args=(x,)))(inputs)
    reduce = lambda v: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
    print("loss", float(total1), float(reduce(total2)))
    np.testing.assert_allclose(float(reduce(total2)), float(total1), rtol=1e-4)
    for k in parts1:
        np.testing.assert_allclose(float(reduce(parts2[k])), float(parts1[k]), rtol=1e-4, atol=1e-6, err_msg=k)
    checked = 0
    for v, g1, g2 in zip(t1.net.trainable_variables, grads1, grads2):
        if g1 is None:
            continue
        g2 = reduce(g2)
        scale = max(float(np.abs(g1).max()), 1e-3)
        np.testing.assert_allclose(np.asarray(g2) / scale, np.asarray(g1) / scale, atol=2e-4, err_msg=v.path)
        checked += 1
    print("gradients checked", checked)
    assert checked > 100

    # One optimizer step (SGD, momentum, clipnorm per weight): the same update. Keras clips
    # each replica's share before summing them; TrainingModel clips the summed gradient.
    clip = config.GRADIENT_CLIP_NORM
    clipped = sum(float(tf.norm(g)) > clip for g in grads1 if g is not None)
    assert clipped > 0, "no gradient is clipped: the test would not see clipping errors"
    tf.function(t1.train_step)(batch)
    tf.function(lambda x: strategy.run(t2.train_step, args=(x,)))(inputs)
    for v1, v2 in zip(t1.net.trainable_variables, t2.net.trainable_variables):
        a, b = np.asarray(v1), np.asarray(v2)
        scale = max(float(np.abs(a).max()), 1e-3)
        np.testing.assert_allclose(b / scale, a / scale, atol=1e-5, err_msg=v1.path)
    print("step checked,", clipped, "gradients clipped")
""")


@pytest.mark.slow
def test_mirrored_step_equals_single_device_step(tmp_path):
    script = tmp_path / "dist.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-6000:]
    assert "gradients checked" in out.stdout and "step checked" in out.stdout
