"""Shared fixtures: Keras backend, seeds, a tiny config and the shapes dataset."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Downloads (mrcnn.download) go to a fresh cache: no test reads or writes the user's
# ~/.keras/models, and no test finds a file there that would spare it a (loopback) download.
if "MRCNN_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["MRCNN_CACHE_DIR"] = tempfile.mkdtemp(prefix="mrcnn_test_cache_")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mrcnn.config import Config  # noqa: E402


def pytest_collection_modifyitems(config, items):
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        skip = pytest.mark.skip(reason="needs a GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)
    yield


class TinyConfig(Config):
    """Small enough to build and run in seconds on CPU."""

    NAME = "tiny"
    NUM_CLASSES = 4
    IMAGES_PER_GPU = 2
    BACKBONE = "resnet50"
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TRAIN_ROIS_PER_IMAGE = 32
    POST_NMS_ROIS_TRAINING = 200
    POST_NMS_ROIS_INFERENCE = 100
    PRE_NMS_LIMIT = 1000
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    MAX_GT_INSTANCES = 10
    DETECTION_MAX_INSTANCES = 20
    STEPS_PER_EPOCH = 5
    VALIDATION_STEPS = 1


@pytest.fixture
def tiny_config():
    return TinyConfig()


@pytest.fixture
def shapes_datasets():
    from samples.shapes.shapes import ShapesDataset

    train = ShapesDataset()
    train.load_shapes(40, 128, 128, seed=0)
    train.prepare()
    val = ShapesDataset()
    val.load_shapes(8, 128, 128, seed=1)
    val.prepare()
    return train, val


def random_boxes(rng, n, low=0.0, high=1.0, min_size=0.02, max_size=0.5):
    """n random (y1, x1, y2, x2) boxes inside [low, high]."""
    size = rng.uniform(min_size, max_size, (n, 2)) * (high - low)
    start = rng.uniform(low, high - size)
    return np.concatenate([start, start + size], axis=1).astype(np.float32)
