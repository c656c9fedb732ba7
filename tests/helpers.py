"""Checks shared by the tests: layer contracts, and the torch-only torchvision reference."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

REFERENCE_SCRIPT = Path(__file__).with_name("torchvision_reference.py")


def assert_config_round_trip(layer):
    """get_config is JSON-serializable and from_config rebuilds an equal config; the layer
    deserializes from its registered name."""
    config = layer.get_config()
    json.dumps(config)
    clone = type(layer).from_config(json.loads(json.dumps(config)))  # wrappers pop keys
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config


def torchvision_reference(out, npz_name, *flags, timeout=600):
    """Runs tests/torchvision_reference.py into the folder `out` in a fresh, torch-only
    process (importing torchvision after TensorFlow crashes here) and returns the arrays it
    saved in `npz_name` as a dict."""
    subprocess.run([sys.executable, str(REFERENCE_SCRIPT), str(out), *flags], check=True,
                   timeout=timeout)
    return dict(np.load(Path(out) / npz_name))
