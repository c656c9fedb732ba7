"""Weights in matterport's Keras 2 h5 layout, written here directly with h5py."""

import h5py
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.weights import WeightsMismatchError, layers_with_weights


def _keras2_names(layer):
    """matterport-era weight names: nested rpn_model weights carry their sub-layer names,
    TimeDistributed weights carry the wrapper's name."""
    if layer.name == "rpn_model":
        return [f"{sub.name}/{w.name}:0" for sub in layer.layers for w in sub.weights]
    return [f"{layer.name}/{w.name}:0" for w in layer.weights]


def _write_keras2_file(path, keras_model, rng, full_model=False, shapes=None):
    """Seeded random arrays in the Keras 2 layout; returns {layer name: [arrays]}."""
    arrays = {}
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if full_model else f
        root.attrs["layer_names"] = [layer.name.encode() for layer in keras_model.layers]
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.2.4"
        for layer in keras_model.layers:
            g = root.create_group(layer.name)
            names = _keras2_names(layer) if layer.weights else []
            g.attrs["weight_names"] = [n.encode() for n in names]
            values = []
            for name, w in zip(names, layer.weights):
                shape = (shapes or {}).get(layer.name, tuple(w.shape))
                v = rng.normal(size=shape).astype(np.float32)
                g.create_dataset(name, data=v)  # "a/b:0" -> subgroup a, dataset "b:0"
                values.append(v)
            arrays[layer.name] = values
        if full_model:
            f.attrs["model_config"] = b"{}"
    return arrays


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.conftest import TinyConfig

    return modellib.MaskRCNN("inference", TinyConfig(), str(tmp_path_factory.mktemp("logs")))


@pytest.mark.parametrize("full_model", [False, True])
def test_loads_every_array_by_name(tmp_path, model, full_model):
    path = str(tmp_path / "mask_rcnn_old.h5")
    arrays = _write_keras2_file(path, model.keras_model, np.random.default_rng(0), full_model)
    with h5py.File(path) as f:  # the layout the reference documents
        root = f["model_weights"] if full_model else f
        assert "kernel:0" in root["rpn_model"]["rpn_conv_shared"]
        assert "kernel:0" in root["mrcnn_class_conv1"]["mrcnn_class_conv1"]
    report = model.load_weights(path, by_name=True, verbose=0)
    assert len(report["loaded"]) == len(layers_with_weights(model.keras_model))
    for layer in layers_with_weights(model.keras_model):
        for w, v in zip(layer.weights, arrays[layer.name]):
            np.testing.assert_array_equal(np.asarray(w), v)


def test_exclude_and_mismatch(tmp_path, model):
    km = model.keras_model
    before = np.asarray(km.get_layer("mrcnn_mask").weights[0]).copy()
    path = str(tmp_path / "other_classes.h5")
    # A file for 81 classes: the class-dependent heads differ in shape.
    shapes = {"mrcnn_class_logits": (1024, 81), "mrcnn_bbox_fc": (1024, 324),
              "mrcnn_mask": (1, 1, 256, 81)}
    arrays = _write_keras2_file(path, km, np.random.default_rng(1), shapes=shapes)
    with pytest.raises(WeightsMismatchError) as err:
        model.load_weights(path, by_name=True, verbose=0)
    message = str(err.value)
    for name in shapes:
        assert name in message
    assert "(1, 1, 256, 4)" in message and "(1, 1, 256, 81)" in message
    report = model.load_weights(path, by_name=True, verbose=0, exclude=[
        "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"])
    assert set(report["excluded"]) == set(shapes) and not report["mismatched"]
    np.testing.assert_array_equal(np.asarray(km.get_layer("mrcnn_mask").weights[0]), before)
    np.testing.assert_array_equal(np.asarray(km.get_layer("conv1").weights[0]), arrays["conv1"][0])
    report = model.load_weights(path, by_name=True, skip_mismatch=True, verbose=0)
    assert set(report["mismatched"]) == set(shapes)


def test_path_from_another_dataset_loads_all_but_class_heads(tmp_path, model):
    """--weights PATH saved with another NUM_CLASSES (a shapes checkpoint into balloon): the
    class count is read from the file and the class-specific layers are left out."""
    from mrcnn import cli
    from mrcnn.weights import file_num_classes

    km = model.keras_model
    path = str(tmp_path / "other_dataset.h5")
    shapes = {"mrcnn_class_logits": (1024, 81), "mrcnn_bbox_fc": (1024, 324),
              "mrcnn_mask": (1, 1, 256, 81)}
    arrays = _write_keras2_file(path, km, np.random.default_rng(2), shapes=shapes)
    assert file_num_classes(path) == 81
    before = np.asarray(km.get_layer("mrcnn_class_logits").weights[0]).copy()
    assert cli.load_initial_weights(model, path, verbose=0) == path
    np.testing.assert_array_equal(np.asarray(km.get_layer("mrcnn_class_logits").weights[0]),
                                  before)
    np.testing.assert_array_equal(np.asarray(km.get_layer("rpn_model").weights[0]),
                                  arrays["rpn_model"][0])
    # Same class count: every layer is loaded, the class heads included.
    same = str(tmp_path / "same_dataset.h5")
    arrays = _write_keras2_file(same, km, np.random.default_rng(3))
    assert file_num_classes(same) == model.config.NUM_CLASSES
    cli.load_initial_weights(model, same, verbose=0)
    np.testing.assert_array_equal(np.asarray(km.get_layer("mrcnn_class_logits").weights[0]),
                                  arrays["mrcnn_class_logits"][0])
    assert file_num_classes(str(tmp_path / "absent.h5")) is None


def test_save_load_round_trip_is_exact(tmp_path, model):
    path = str(tmp_path / "ours.h5")
    model.save_weights(path)
    originals = [np.asarray(w).copy() for w in model.keras_model.weights]
    for w in model.keras_model.weights:
        w.assign(np.zeros(w.shape, w.dtype))
    model.load_weights(path, verbose=0)
    for w, v in zip(model.keras_model.weights, originals):
        np.testing.assert_array_equal(np.asarray(w), v)
    keras3 = str(tmp_path / "ours.weights.h5")
    model.save_weights(keras3)
    for w in model.keras_model.weights:
        w.assign(np.zeros(w.shape, w.dtype))
    model.load_weights(keras3)
    for w, v in zip(model.keras_model.weights, originals):
        np.testing.assert_array_equal(np.asarray(w), v)


def test_missing_and_foreign_files_are_clear(tmp_path, model):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        model.load_weights(str(tmp_path / "nope.h5"))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="junk.h5"):
        model.load_weights(str(junk))


def test_keras_applications_names_map_to_matterports():
    from mrcnn.weights import keras_applications_name as k

    assert k("conv1_conv") == "conv1" and k("conv1_bn") == "bn_conv1"
    assert k("conv2_block1_0_conv") == "res2a_branch1"
    assert k("conv3_block4_3_bn") == "bn3d_branch2c"
    assert k("conv4_block23_2_conv") == "res4w_branch2b"  # resnet101's last stage-4 block
    assert k("pool1_pool") is None


@pytest.mark.slow
def test_imagenet_init_from_keras_applications_file(tmp_path):
    import keras

    from tests.conftest import TinyConfig

    keras.utils.set_random_seed(3)
    ref = keras.applications.ResNet50(weights=None, include_top=False)
    path = str(tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    ref.save(path)  # Keras' legacy full-model h5: layer_names under model_weights
    model = modellib.MaskRCNN("inference", TinyConfig(), str(tmp_path / "logs"))
    assert model.get_imagenet_weights(search=[str(tmp_path)]) == path
    report = model.load_imagenet_weights(path, verbose=0)
    assert len(report["loaded"]) == 106  # every resnet50 conv and BatchNorm layer
    km = model.keras_model
    for ours, theirs in (("res2a_branch1", "conv2_block1_0_conv"),
                         ("bn4f_branch2c", "conv4_block6_3_bn"),
                         ("conv1", "conv1_conv"), ("res5c_branch2b", "conv5_block3_2_conv")):
        for a, b in zip(km.get_layer(ours).weights, ref.get_layer(theirs).weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    from mrcnn.weights import find_imagenet_weights

    with pytest.raises(FileNotFoundError, match="resnet101_weights_tf_dim_ordering.*nowhere"):
        find_imagenet_weights("resnet101", search=[str(tmp_path / "nowhere")], download=False)
