"""Layer contract checks shared by the layer tests."""

import json

import keras


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
