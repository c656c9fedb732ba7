"""Our ResNet-50 with ImageNet weights against keras.applications' ResNet50 with the same file.

The two graphs differ in two documented places, and the comparison takes each into account:
- the stem's max-pool: ours (matterport's, kept for mask_rcnn_coco.h5) is 3x3 stride 2 with
  "same" padding (nothing above/left, one row/column below/right); keras.applications pads one
  pixel on every side. The pooling grids are one pixel apart, so the outputs of the two stems
  are compared to NumPy max-pools of the same conv1 activations, and our stages 2-5 are fed
  keras.applications' own pool1 output;
- BatchNorm epsilon: 1e-3 here (matterport's Keras default), 1.001e-5 in keras.applications;
  the reference is run with ours.
The weights: a keras.applications ResNet50 with seeded random weights and BatchNorm statistics,
saved in Keras' h5 layout; and ../shared/data's ImageNet file when it is there.
"""

import os

import numpy as np
import pytest

from mrcnn.weights import IMAGENET_FILES, SHARED_DATA_DIR

STAGES = {"res2c_out": "conv2_block3_out", "res3d_out": "conv3_block4_out",
          "res4f_out": "conv4_block6_out", "res5c_out": "conv5_block3_out"}


def _max_pool_3x3_s2(x, before, after):
    """[h, w, c] -> 3x3 stride-2 max-pool after padding `before`/`after` rows and columns
    (padded cells never win: the input is post-ReLU and the padding is -inf)."""
    x = np.pad(x, ((before, after), (before, after), (0, 0)), constant_values=-np.inf)
    oh, ow = (x.shape[0] - 3) // 2 + 1, (x.shape[1] - 3) // 2 + 1
    out = np.full((oh, ow, x.shape[2]), -np.inf, dtype=x.dtype)
    for dy in range(3):
        for dx in range(3):
            out = np.maximum(out, x[dy:dy + 2 * oh:2, dx:dx + 2 * ow:2])
    return out


def _random_reference(path):
    """A keras.applications ResNet50 with seeded random weights and non-trivial BatchNorm
    statistics, saved to path (Keras' h5 layout: conv1_conv, conv2_block1_1_conv, ...)."""
    import keras

    keras.utils.set_random_seed(5)
    ref = keras.applications.ResNet50(weights=None, include_top=False)
    rng = np.random.default_rng(5)
    for layer in ref.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2, var.shape)])
    ref.save(path)
    return ref


def _shared_file():
    path = os.path.join(SHARED_DATA_DIR, IMAGENET_FILES["resnet50"])
    if not os.path.isfile(path):
        pytest.skip(f"no ImageNet ResNet50 weights at {os.path.abspath(path)}")
    from mrcnn.weights import file_layer_names

    if "conv1_conv" not in file_layer_names(path):
        pytest.skip("the shared file uses the classic res2a_branch2a names, which "
                    "keras.applications' ResNet50 cannot load")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("source", ["random", "shared"])
def test_backbone_matches_keras_applications_resnet50(tmp_path, source):
    import keras
    import skimage.data

    from mrcnn import model as modellib
    from mrcnn.backbone.resnet import resnet_stages
    from mrcnn.weights import keras_applications_name, load_weights
    from tests.conftest import TinyConfig

    if source == "random":
        path = str(tmp_path / IMAGENET_FILES["resnet50"])
        _random_reference(path)
    else:
        path = _shared_file()
    ref = keras.applications.ResNet50(weights=path, include_top=False)
    for layer in ref.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.epsilon = 1e-3
    # A fixed image, preprocessed as keras.applications expects (BGR, ImageNet mean removed).
    image = skimage.data.astronaut()[:256, 128:384, ::-1].astype(np.float32)
    image = (image - np.array([103.939, 116.779, 123.68], np.float32))[None]
    ref_out = keras.Model(ref.input, [ref.get_layer(n).output for n in
                                      ["conv1_relu", "pool1_pool"] + list(STAGES.values())])
    ref_relu, ref_pool, *ref_stages = [np.asarray(v) for v in ref_out(image)]

    # The user's path: MaskRCNN.load_imagenet_weights, then the backbone inside the model.
    config = type("R50", (TinyConfig,), {"IMAGE_MIN_DIM": 256, "IMAGE_MAX_DIM": 256,
                                         "IMAGES_PER_GPU": 1})()
    model = modellib.MaskRCNN("inference", config, str(tmp_path / "logs"))
    report = model.load_imagenet_weights(path, verbose=0)
    assert len(report["loaded"]) == 106
    km = model.keras_model
    stem = keras.Model(km.get_layer("input_image").output,
                       [km.get_layer("bn_conv1").output, km.get_layer("res2a_branch2a").input]
                       + [km.get_layer(n).output for n in STAGES])
    bn1, c1, *_ = [np.asarray(v) for v in stem(image)]
    scale = np.abs(ref_relu).max()
    np.testing.assert_allclose(np.maximum(bn1, 0), ref_relu, rtol=1e-4, atol=1e-4 * scale)
    # Stems: ours pools with "same" padding, keras.applications with one pixel all round.
    np.testing.assert_allclose(c1[0], _max_pool_3x3_s2(ref_relu[0], 0, 1), rtol=1e-4,
                               atol=1e-4 * scale)
    np.testing.assert_allclose(ref_pool[0], _max_pool_3x3_s2(ref_relu[0], 1, 1), rtol=1e-5,
                               atol=1e-6 * scale)
    assert not np.allclose(c1, ref_pool, atol=1e-2 * scale)  # the grids really differ

    # Stages 2-5 on keras.applications' pool1 output, weights loaded by our name mapping.
    c1_input = keras.Input(shape=[None, None, 64])
    stages = keras.Model(c1_input, resnet_stages(c1_input, "resnet50", stage5=True,
                                                 train_bn=False))
    report = load_weights(stages, path, by_name=True, rename=keras_applications_name, verbose=0)
    assert len(report["loaded"]) == 106 - 2  # all but conv1 and bn_conv1
    for ours, theirs, name in zip(stages(ref_pool), ref_stages, STAGES):
        theirs_scale = np.abs(theirs).max()
        assert theirs_scale > 0
        np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-3,
                                   atol=1e-4 * theirs_scale, err_msg=name)
