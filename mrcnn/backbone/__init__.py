"""Backbones: ResNet-50/101, ResNeXt-50 (32x4d) / ResNeXt-101 (32x8d) and the FPN on top."""

from mrcnn.backbone.fpn import fpn_graph
from mrcnn.backbone.resnet import (
    STAGE4_BLOCKS,
    ResNetStyle,
    conv_block,
    identity_block,
    resnet_graph,
    resnet_model,
)
from mrcnn.backbone.resnext import RESNEXT_ARCHITECTURES, resnext_graph, resnext_model
from mrcnn.config import BACKBONE_NAMES

# Every name Config.BACKBONE accepts (mrcnn.config.BACKBONE_NAMES, kept keras-free there).
BACKBONES = BACKBONE_NAMES


def build_backbone(input_image, backbone, train_bn, style=None):
    """[C2, C3, C4, C5] from a backbone name (BACKBONES) or a callable with resnet_graph's
    signature. style: a ResNetStyle for the named backbones (None: matterport's; the ResNeXts
    always stride their 3x3 convs, see mrcnn.backbone.resnext)."""
    if callable(backbone):
        _, C2, C3, C4, C5 = backbone(input_image, stage5=True, train_bn=train_bn)
    elif backbone in RESNEXT_ARCHITECTURES:
        _, C2, C3, C4, C5 = resnext_graph(input_image, backbone, stage5=True, train_bn=train_bn,
                                          style=style)
    elif backbone in STAGE4_BLOCKS:
        _, C2, C3, C4, C5 = resnet_graph(input_image, backbone, stage5=True, train_bn=train_bn,
                                         style=style)
    else:
        raise ValueError(f"unknown backbone {backbone!r}: one of {', '.join(BACKBONES)} or a "
                         "callable")
    return [C2, C3, C4, C5]
