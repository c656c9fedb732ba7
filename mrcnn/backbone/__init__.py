"""Backbones: ResNet-50/101 and the FPN on top of them."""

from mrcnn.backbone.fpn import fpn_graph
from mrcnn.backbone.resnet import (
    ResNetStyle,
    conv_block,
    identity_block,
    resnet_graph,
    resnet_model,
)

BACKBONES = ("resnet50", "resnet101")


def build_backbone(input_image, backbone, train_bn, style=None):
    """[C2, C3, C4, C5] from a backbone name or a callable with resnet_graph's signature.
    style: a ResNetStyle for the named ResNets (None: matterport's)."""
    if callable(backbone):
        _, C2, C3, C4, C5 = backbone(input_image, stage5=True, train_bn=train_bn)
    else:
        _, C2, C3, C4, C5 = resnet_graph(input_image, backbone, stage5=True, train_bn=train_bn,
                                         style=style)
    return [C2, C3, C4, C5]
