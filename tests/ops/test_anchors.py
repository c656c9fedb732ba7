import numpy as np

from mrcnn.config import Config
from mrcnn.ops import anchors as A


def test_generate_anchors_hand_case():
    # One scale 8, ratios 1 and 4 (w/h), a 2x1 map with stride 4: centres (0,0) and (4,0).
    a = A.generate_anchors([8], [1, 4], (2, 1), 4, 1)
    expected = [[-4, -4, 4, 4], [-2, -8, 2, 8], [0, -4, 8, 4], [2, -8, 6, 8]]
    np.testing.assert_allclose(a, expected)


def test_pyramid_anchor_count_at_1024():
    class C(Config):
        NAME = "x"
        NUM_CLASSES = 2

    config = C()
    shapes = A.compute_backbone_shapes(config, (1024, 1024, 3))
    a = A.generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, shapes,
                                   config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    assert a.shape == (261888, 4)


def test_graph_twin_equals_numpy():
    scales, ratios, strides = (8, 16, 32, 64, 128), [0.5, 1, 2], [4, 8, 16, 32, 64]
    for hw, stride in (((128, 192), 1), ((256, 64), 2)):
        shapes = A.backbone_shapes_from_strides(hw, strides)
        ref = A.generate_pyramid_anchors(scales, ratios, shapes, strides, stride)
        got = np.asarray(A.generate_pyramid_anchors_graph(hw, scales, ratios, strides, stride))
        np.testing.assert_allclose(got, ref, atol=1e-4)


def test_backbone_shapes_of_every_named_backbone():
    """The ResNeXts have ResNet's strides (4..64): the same pyramid shapes; unknown names fail."""
    import pytest

    from mrcnn.config import BACKBONE_NAMES

    class C(Config):
        NAME = "x"
        NUM_CLASSES = 2

    config = C()
    expected = [[50, 38], [25, 19], [13, 10], [7, 5], [4, 3]]  # ceil(200 / s), ceil(150 / s)
    for name in BACKBONE_NAMES:
        config.BACKBONE = name
        np.testing.assert_array_equal(A.compute_backbone_shapes(config, (200, 150, 3)), expected)
    config.BACKBONE = "resnext50"
    with pytest.raises(ValueError, match="unknown BACKBONE 'resnext50'"):
        A.compute_backbone_shapes(config, (200, 150, 3))
