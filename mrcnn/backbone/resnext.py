"""ResNeXt-50 (32x4d) and ResNeXt-101 (32x8d) backbones (Xie et al., "Aggregated Residual
Transformations for Deep Neural Networks", CVPR 2017), as torchvision's resnext50_32x4d and
resnext101_32x8d.

A ResNeXt bottleneck is ResNet's with a grouped 3x3 conv: 32 groups ("cardinality") of
width_per_group channels each in stage 2, doubling per stage; the output widths (256, 512,
1024, 2048) and the blocks per stage (3-4-6-3 and 3-4-23-3) are ResNet-50/101's. Stage widths of
the 1x1 -> grouped 3x3 -> 1x1 branch, as torchvision's Bottleneck computes them
(width = planes * width_per_group / 64 * groups):

    resnext50_32x4d:  128, 256, 512, 1024  (groups 32, 4 channels per group in stage 2)
    resnext101_32x8d: 256, 512, 1024, 2048 (groups 32, 8 channels per group in stage 2)

The blocks, stem and layer names are mrcnn.backbone.resnet's (conv1, bn_conv1,
res{stage}{block}_branch2a/2b/2c, res{stage}{block}_branch1, res{stage}{block}_out), so weights
load by name and FPN/heads are unchanged. The grouped convs are mrcnn.layers.GroupedConv2D
(Conv2D(groups=...) on TensorFlow's own kernels). As in the ResNeXt paper and torchvision, a
downsampling block strides its 3x3 conv (whatever Config.RESNET_STRIDE_ON_3X3 says, which is
about ResNet-50/101 only), and the convolutions have no bias (each is followed by BatchNorm;
matterport's ResNet keeps its biases only for its released files). ResNetStyle's
symmetric_padding and bn_epsilon apply as for ResNet.
"""

import keras

from mrcnn.backbone.resnet import (
    MATTERPORT_STYLE,
    ResNetStyle,
    conv_block,
    identity_block,
    resnet_stem,
)

__all__ = ["RESNEXT_ARCHITECTURES", "resnext_stages", "resnext_graph", "resnext_model"]

# name -> (blocks per stage 2..5, groups, width_per_group): torchvision/models/resnet.py.
RESNEXT_ARCHITECTURES = {
    "resnext50_32x4d": ((3, 4, 6, 3), 32, 4),
    "resnext101_32x8d": ((3, 4, 23, 3), 32, 8),
}


def _resnext_style(style):
    """style with the stride on the 3x3 conv (ResNeXt's definition)."""
    style = style or MATTERPORT_STYLE
    return ResNetStyle(stride_on_3x3=True, symmetric_padding=style.symmetric_padding,
                       bn_epsilon=style.bn_epsilon)


def resnext_stages(c1, architecture, stage5=False, train_bn=True, style=None):
    """Stages 2..5 of a ResNeXt on C1 [batch, h, w, 64]. Returns [C2, C3, C4, C5] with 256, 512,
    1024, 2048 channels (C5 None unless stage5), strides 1, 2, 4, 8 relative to C1."""
    if architecture not in RESNEXT_ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(RESNEXT_ARCHITECTURES)}, got "
                         f"{architecture!r}")
    blocks, groups, width_per_group = RESNEXT_ARCHITECTURES[architecture]
    kw = {"train_bn": train_bn, "style": _resnext_style(style), "use_bias": False,
          "groups": groups}
    outputs = []
    x = c1
    for i, count in enumerate(blocks):
        stage = i + 2
        if stage == 5 and not stage5:
            outputs.append(None)
            break
        planes = 64 * 2 ** i
        width = planes * width_per_group // 64 * groups
        filters = [width, width, planes * 4]
        x = conv_block(x, 3, filters, stage=stage, block="a",
                       strides=(1, 1) if stage == 2 else (2, 2), **kw)
        for b in range(1, count):
            x = identity_block(x, 3, filters, stage=stage, block=chr(97 + b), **kw)
        outputs.append(x)
    return outputs


def resnext_graph(input_image, architecture, stage5=False, train_bn=True, style=None):
    """ResNeXt stages C1..C5 (C5 None unless stage5), like resnet_graph.

    input_image: [batch, height, width, channels]; architecture: a RESNEXT_ARCHITECTURES name;
    style: a ResNetStyle for padding and BatchNorm epsilon (None: matterport's, i.e. Keras
    "same" padding and epsilon 1e-3; torchvision's weights want symmetric padding and 1e-5).
    Returns [C1, C2, C3, C4, C5] with strides 4 (C1 after max-pool), 4, 8, 16, 32.
    """
    style = _resnext_style(style)
    c1 = resnet_stem(input_image, train_bn, style, use_bias=False)
    return [c1] + resnext_stages(c1, architecture, stage5, train_bn, style)


def resnext_model(architecture, channels=3, train_bn=True, style=None):
    """A standalone keras.Model of the trunk, input [batch, h, w, channels] -> C2..C5."""
    image = keras.Input(shape=[None, None, channels], name="input_image")
    _, c2, c3, c4, c5 = resnext_graph(image, architecture, stage5=True, train_bn=train_bn,
                                      style=style)
    return keras.Model(image, [c2, c3, c4, c5], name=architecture)
