"""ResNeXt-50 (32x4d) / ResNeXt-101 (32x8d) against torchvision's resnext50_32x4d /
resnext101_32x8d.

torchvision is the reference, run in its own process (tests/torchvision_reference.py --resnext:
importing torchvision after TensorFlow crashes): parameter counts of both trunks, and the C2..C5
outputs of a seeded random resnext50_32x4d (BatchNorm statistics randomised) on a fixed image,
after its state_dict went through our loader (MaskRCNN.load_imagenet_weights on the .pth).
"""

import importlib.util

import numpy as np
import pytest

from mrcnn.backbone import BACKBONES, RESNEXT_ARCHITECTURES, STAGE4_BLOCKS
from mrcnn.backbone.resnext import resnext_model
from tests.conftest import TinyConfig
from tests.helpers import torchvision_reference

STAGE_LAYERS = ["res2c_out", "res3d_out", "res4f_out", "res5c_out"]
# torchvision's documented totals (ResNeXt50_32X4D_Weights / ResNeXt101_32X8D_Weights
# meta["num_params"]), fc head (2048 * 1000 + 1000) included.
TORCHVISION_TOTALS = {"resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336}

needs_torchvision = pytest.mark.skipif(importlib.util.find_spec("torchvision") is None,
                                       reason="torchvision is not installed")


class TorchvisionResNeXtConfig(TinyConfig):
    """A small model with torchvision's backbone conventions (padding, epsilon, input
    normalisation)."""

    NAME = "resnext_tv"
    BACKBONE = "resnext50_32x4d"
    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "none"
    RESNET_SYMMETRIC_PADDING = True
    BN_EPSILON = 1e-5
    TRAIN_BN = False
    MEAN_PIXEL = np.array([0.485, 0.456, 0.406]) * 255.0
    STD_PIXEL = np.array([0.229, 0.224, 0.225]) * 255.0


def _trunk_counts(model):
    """(parameters, BatchNorm moving statistics) of a Keras model: torchvision counts gamma and
    beta as parameters and running_mean / running_var as buffers."""
    stats = sum(int(np.prod(w.shape)) for w in model.weights if "moving_" in w.path)
    return model.count_params() - stats, stats


def test_backbone_names_cover_every_architecture():
    assert set(BACKBONES) == set(STAGE4_BLOCKS) | set(RESNEXT_ARCHITECTURES)


def test_block_layout_is_torchvisions():
    """Grouped 3x3 convs of width planes * width_per_group / 64 * 32, stride on the 3x3 of the
    first block of stages 3-5, no conv biases, 3-4-6-3 blocks, strides 4..32."""
    model = resnext_model("resnext50_32x4d")
    for stage, width in zip(range(2, 6), (128, 256, 512, 1024)):
        a, b, c = (model.get_layer(f"res{stage}a_branch2{x}") for x in "abc")
        assert b.groups == 32 and b.filters == width and a.filters == width
        assert tuple(b.kernel.shape) == (3, 3, width // 32, width)
        assert c.filters == 256 * 2 ** (stage - 2)
        stride = (1, 1) if stage == 2 else (2, 2)
        assert tuple(b.strides) == stride and tuple(a.strides) == (1, 1)
        assert tuple(model.get_layer(f"res{stage}a_branch1").strides) == stride
    convs = [layer for layer in model.layers if hasattr(layer, "kernel")]
    assert convs and not any(layer.use_bias for layer in convs)
    names = {layer.name for layer in model.layers}
    assert {"res2c_out", "res3d_out", "res4f_out", "res5c_out"} <= names
    assert "res4g_out" not in names and "res2d_out" not in names
    outs = model(np.zeros((1, 64, 96, 3), np.float32))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 24, 256), (1, 8, 12, 512),
                                              (1, 4, 6, 1024), (1, 2, 3, 2048)]
    wide = resnext_model("resnext101_32x8d")
    assert wide.get_layer("res2a_branch2b").filters == 256
    assert wide.get_layer("res5a_branch2b").filters == 2048
    assert "res4w_out" in {layer.name for layer in wide.layers}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("tv_resnext")
    ref = torchvision_reference(out, "resnext_reference.npz", "--resnext")
    ref["path"] = out / "resnext50_32x4d_random.pth"
    return ref


@needs_torchvision
@pytest.mark.slow
@pytest.mark.parametrize("architecture", sorted(RESNEXT_ARCHITECTURES))
def test_parameter_count_equals_torchvisions(reference, architecture):
    """Trunk only on both sides: torchvision's total minus its fc head; ours has no head."""
    total = int(reference[f"{architecture}_total"])
    assert total == TORCHVISION_TOTALS[architecture]
    params, stats = _trunk_counts(resnext_model(architecture))
    assert params == total - int(reference[f"{architecture}_fc"])
    assert stats == int(reference[f"{architecture}_running_stats"])


@needs_torchvision
@pytest.mark.slow
def test_imagenet_pth_loads_and_matches_torchvision(reference, tmp_path):
    """torchvision's state_dict through MaskRCNN.load_imagenet_weights, then C2..C5 on the same
    normalised 256x320 input. Tolerance: 1e-5 of each map's largest magnitude. Both sides are
    float32 and sum the convolutions in different orders, which gives relative errors of about
    1e-7 per layer, accumulated over 16 bottlenecks: measured at most 9e-7 (C4) here, 10x
    under the bound. Swapping two groups of one stage-4 conv gives 0.066 at C4: a wrong weight,
    group order or padding is far above it."""
    import keras

    from mrcnn import model as modellib
    from mrcnn.ops.image import mold_image

    config = TorchvisionResNeXtConfig()
    model = modellib.MaskRCNN("inference", config, str(tmp_path / "logs"))
    report = model.load_imagenet_weights(str(reference["path"]), verbose=0)
    n_layers = 2 + 2 * (3 * 16 + 4)  # stem conv + bn, 3 conv + bn per block, 4 shortcuts
    assert len(report["loaded"]) == n_layers
    assert report["unused_in_file"] == ["fc"]
    assert "fpn_p2" in report["missing_in_file"]
    km = model.keras_model
    probe = keras.Model(km.get_layer("input_image").output,
                        [km.get_layer(n).output for n in STAGE_LAYERS])
    # Our preprocessing (MEAN_PIXEL, STD_PIXEL on 0-255 pixels) gives torchvision's input.
    molded = mold_image(reference["image"][None].astype(np.float32), config)
    np.testing.assert_allclose(molded, reference["molded"], atol=1e-5)
    outs = probe.predict(reference["molded"], verbose=0)
    for name, ours in zip(["C2", "C3", "C4", "C5"], outs):
        ref = reference[name]
        assert ours.shape == ref.shape, name
        scale = np.abs(ref).max()
        assert scale > 0
        diff = np.abs(ours - ref).max() / scale
        assert diff <= 1e-5, f"{name}: max abs diff {diff:.2e} of the map's scale {scale:.3g}"


@needs_torchvision
@pytest.mark.slow
def test_bad_state_dict_and_config_are_named(reference, tmp_path):
    from mrcnn import builder
    from mrcnn.torchvision_weights import (
        TorchvisionWeightsError,
        load_torchvision_backbone_weights,
        read_state_dict,
    )

    config = TorchvisionResNeXtConfig()
    km = builder.build_inference_model(config)
    sd = read_state_dict(reference["path"])
    before = km.get_layer("res3a_branch2b").get_weights()[0].copy()
    broken = dict(sd)
    del broken["layer2.0.conv2.weight"]
    broken["layer5.0.conv1.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    broken["layer1.0.conv2.weight"] = np.zeros((128, 128, 3, 3), np.float32)  # not grouped
    with pytest.raises(TorchvisionWeightsError) as e:
        load_torchvision_backbone_weights(km, config, broken)
    msg = str(e.value)
    assert "missing keys (1): layer2.0.conv2.weight" in msg
    assert "unexpected keys (1): layer5.0.conv1.weight" in msg
    assert "layer1.0.conv2.weight -> res2a_branch2b" in msg and "shape mismatches (1)" in msg
    np.testing.assert_array_equal(km.get_layer("res3a_branch2b").get_weights()[0], before)
    # The ResNeXt-101 layout does not fit a ResNeXt-50 model (layer3.6 .. layer3.22 absent).
    with pytest.raises(TorchvisionWeightsError, match="missing keys .*layer3.6.conv1.weight"):
        load_torchvision_backbone_weights(km, type("Wide", (TorchvisionResNeXtConfig,), {
            "BACKBONE": "resnext101_32x8d"})(), sd)
    with pytest.raises(TorchvisionWeightsError, match="detection checkpoint"):
        load_torchvision_backbone_weights(km, config, {"backbone.body." + k: v
                                                       for k, v in sd.items()})
    keras_padding = type("KerasPad", (TorchvisionResNeXtConfig,),
                         {"RESNET_SYMMETRIC_PADDING": False})()
    with pytest.raises(TorchvisionWeightsError, match="RESNET_SYMMETRIC_PADDING = False"):
        load_torchvision_backbone_weights(km, keras_padding, sd)


@pytest.mark.slow
def test_h5_weights_round_trip_by_name(tmp_path):
    """save_weights (Keras 2 layout) and load_weights(by_name=True) restore every ResNeXt
    weight, and the restored model gives the same detections."""
    from mrcnn import model as modellib
    from mrcnn.weights import file_layer_names

    config = type("RX", (TinyConfig,), {"BACKBONE": "resnext50_32x4d", "IMAGES_PER_GPU": 1,
                                        "DETECTION_MIN_CONFIDENCE": 0.0})()
    a = modellib.MaskRCNN("inference", config, str(tmp_path / "a"))
    path = str(tmp_path / "resnext.h5")
    a.save_weights(path)
    assert {"res2a_branch2b", "res4f_branch2b", "res5c_branch2c"} <= set(file_layer_names(path))
    b = modellib.MaskRCNN("inference", config, str(tmp_path / "b"))
    assert not np.array_equal(a.keras_model.get_layer("res3b_branch2b").get_weights()[0],
                              b.keras_model.get_layer("res3b_branch2b").get_weights()[0])
    b.load_weights(path, by_name=True)
    for wa, wb in zip(a.keras_model.weights, b.keras_model.weights):
        np.testing.assert_array_equal(np.asarray(wa), np.asarray(wb), err_msg=wa.path)
    image = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    ra, rb = a.detect([image])[0], b.detect([image])[0]
    np.testing.assert_array_equal(ra["rois"], rb["rois"])
    np.testing.assert_allclose(ra["scores"], rb["scores"], rtol=1e-6)
