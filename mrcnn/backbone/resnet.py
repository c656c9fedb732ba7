"""ResNet-50/101 backbone with matterport's layer names (conv1, bn_conv1, res2a_branch2a, ...)."""

import keras
from keras import layers as KL

from mrcnn.layers.graph_utils import BatchNorm
from mrcnn.layers.grouped_conv import GroupedConv2D

__all__ = ["identity_block", "conv_block", "resnet_stem", "resnet_stages", "resnet_graph",
           "resnet_model", "STAGE4_BLOCKS", "ResNetStyle", "DEFAULT_BN_EPSILON"]

# Identity blocks in stage 4 (named b, c, ...): 5 for resnet50, 22 for resnet101.
STAGE4_BLOCKS = {"resnet50": 5, "resnet101": 22}


# Keras' BatchNormalization epsilon, matterport's (torchvision's FrozenBatchNorm2d uses 1e-5).
DEFAULT_BN_EPSILON = 1e-3


class ResNetStyle:
    """Architecture switches of the ResNet (Config.RESNET_STRIDE_ON_3X3,
    RESNET_SYMMETRIC_PADDING, BN_EPSILON; the defaults are matterport's ResNet).

    stride_on_3x3: a downsampling block strides its 3x3 conv (ResNet "v1.5", torchvision)
        instead of its first 1x1 conv (the original ResNet, matterport).
    symmetric_padding: the strided 3x3 conv and the stem max-pool pad one pixel on every side,
        as PyTorch does, instead of Keras "same" padding (which pads an even input only at the
        bottom/right, so the sampling grid is one pixel off).
    bn_epsilon: epsilon of every BatchNorm layer.
    """

    def __init__(self, stride_on_3x3=False, symmetric_padding=False,
                 bn_epsilon=DEFAULT_BN_EPSILON):
        self.stride_on_3x3 = bool(stride_on_3x3)
        self.symmetric_padding = bool(symmetric_padding)
        self.bn_epsilon = float(bn_epsilon)


MATTERPORT_STYLE = ResNetStyle()


def _bn(name, train_bn, style=MATTERPORT_STYLE):
    return BatchNorm(frozen=not train_bn, epsilon=style.bn_epsilon, name=name)


def _bottleneck(input_tensor, kernel_size, filters, stage, block, strides, use_bias, train_bn,
                style=MATTERPORT_STYLE, groups=1):
    """The 1x1 -> kxk -> 1x1 main branch (res{stage}{block}_branch2a/2b/2c), before the add.
    groups: groups of the kxk conv (1: ResNet; the cardinality for ResNeXt)."""
    nb_filter1, nb_filter2, nb_filter3 = filters
    conv_name_base = f"res{stage}{block}_branch"
    bn_name_base = f"bn{stage}{block}_branch"
    strides = tuple(strides) if isinstance(strides, (tuple, list)) else (strides, strides)
    strides_1x1, strides_kxk = ((1, 1), strides) if style.stride_on_3x3 else (strides, (1, 1))
    x = KL.Conv2D(nb_filter1, (1, 1), strides=strides_1x1, name=conv_name_base + "2a",
                  use_bias=use_bias)(input_tensor)
    x = _bn(bn_name_base + "2a", train_bn, style)(x)
    x = KL.Activation("relu")(x)
    if style.symmetric_padding and strides_kxk != (1, 1):
        x = KL.ZeroPadding2D(kernel_size // 2)(x)
        padding = "valid"
    else:
        padding = "same"
    conv = KL.Conv2D if groups == 1 else GroupedConv2D
    x = conv(nb_filter2, (kernel_size, kernel_size), strides=strides_kxk, padding=padding,
             groups=groups, name=conv_name_base + "2b", use_bias=use_bias)(x)
    x = _bn(bn_name_base + "2b", train_bn, style)(x)
    x = KL.Activation("relu")(x)
    x = KL.Conv2D(nb_filter3, (1, 1), name=conv_name_base + "2c", use_bias=use_bias)(x)
    return _bn(bn_name_base + "2c", train_bn, style)(x)


def identity_block(input_tensor, kernel_size, filters, stage, block, use_bias=True,
                   train_bn=True, style=MATTERPORT_STYLE, groups=1):
    """Bottleneck block whose shortcut is the identity.

    input_tensor: [batch, h, w, filters[2]]; kernel_size: of the middle conv; filters: the three
    conv widths; stage, block: used in layer names (res{stage}{block}_branch2a, ...).
    train_bn: False freezes the block's BatchNorm layers (see graph_utils.BatchNorm).
    style: a ResNetStyle (default: matterport's ResNet).
    groups: groups of the middle conv (ResNeXt's cardinality; 1 for ResNet).
    """
    x = _bottleneck(input_tensor, kernel_size, filters, stage, block, (1, 1), use_bias,
                    train_bn, style, groups)
    x = KL.Add()([x, input_tensor])
    return KL.Activation("relu", name=f"res{stage}{block}_out")(x)


def conv_block(input_tensor, kernel_size, filters, stage, block, strides=(2, 2), use_bias=True,
               train_bn=True, style=MATTERPORT_STYLE, groups=1):
    """Bottleneck block with a strided 1x1 conv shortcut (res{stage}{block}_branch1)."""
    x = _bottleneck(input_tensor, kernel_size, filters, stage, block, strides, use_bias,
                    train_bn, style, groups)
    shortcut = KL.Conv2D(filters[2], (1, 1), strides=strides, name=f"res{stage}{block}_branch1",
                         use_bias=use_bias)(input_tensor)
    shortcut = _bn(f"bn{stage}{block}_branch1", train_bn, style)(shortcut)
    x = KL.Add()([x, shortcut])
    return KL.Activation("relu", name=f"res{stage}{block}_out")(x)


def resnet_stem(input_image, train_bn=True, style=MATTERPORT_STYLE, use_bias=True):
    """Stage 1: conv1 (7x7, stride 2), bn_conv1, ReLU and a 3x3 stride-2 max-pool with "same"
    padding (matterport's; keras.applications and PyTorch pad 1 pixel on every side instead,
    which shifts the pooling grid by one pixel: style.symmetric_padding). use_bias: conv1 has
    a bias (matterport's; ResNeXt has none, as torchvision). Returns C1 [batch, h/4, w/4, 64]."""
    x = KL.ZeroPadding2D((3, 3))(input_image)
    x = KL.Conv2D(64, (7, 7), strides=(2, 2), name="conv1", use_bias=use_bias)(x)
    x = _bn("bn_conv1", train_bn, style)(x)
    x = KL.Activation("relu")(x)
    if style.symmetric_padding:
        # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU (>= 0).
        x = KL.ZeroPadding2D((1, 1))(x)
        return KL.MaxPooling2D((3, 3), strides=(2, 2), padding="valid")(x)
    return KL.MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)


def resnet_stages(c1, architecture, stage5=False, train_bn=True, style=MATTERPORT_STYLE):
    """Stages 2..5 on C1 [batch, h, w, 64]. Returns [C2, C3, C4, C5] (C5 None unless stage5),
    strides 1, 2, 4, 8 relative to C1."""
    if architecture not in STAGE4_BLOCKS:
        raise ValueError(f"architecture must be one of {sorted(STAGE4_BLOCKS)}, got "
                         f"{architecture!r}")
    kw = {"train_bn": train_bn, "style": style}
    # Stage 2
    x = conv_block(c1, 3, [64, 64, 256], stage=2, block="a", strides=(1, 1), **kw)
    x = identity_block(x, 3, [64, 64, 256], stage=2, block="b", **kw)
    C2 = x = identity_block(x, 3, [64, 64, 256], stage=2, block="c", **kw)
    # Stage 3
    x = conv_block(x, 3, [128, 128, 512], stage=3, block="a", **kw)
    for block in "bcd":
        x = identity_block(x, 3, [128, 128, 512], stage=3, block=block, **kw)
    C3 = x
    # Stage 4
    x = conv_block(x, 3, [256, 256, 1024], stage=4, block="a", **kw)
    for i in range(STAGE4_BLOCKS[architecture]):
        x = identity_block(x, 3, [256, 256, 1024], stage=4, block=chr(98 + i), **kw)
    C4 = x
    # Stage 5
    if stage5:
        x = conv_block(x, 3, [512, 512, 2048], stage=5, block="a", **kw)
        x = identity_block(x, 3, [512, 512, 2048], stage=5, block="b", **kw)
        C5 = identity_block(x, 3, [512, 512, 2048], stage=5, block="c", **kw)
    else:
        C5 = None
    return [C2, C3, C4, C5]


def resnet_graph(input_image, architecture, stage5=False, train_bn=True, style=None):
    """ResNet stages C1..C5 (C5 None unless stage5).

    input_image: [batch, height, width, channels]; architecture: "resnet50" or "resnet101";
    style: a ResNetStyle (None: matterport's ResNet).
    Returns [C1, C2, C3, C4, C5] with strides 4 (C1 after max-pool), 4, 8, 16, 32.
    """
    style = style or MATTERPORT_STYLE
    c1 = resnet_stem(input_image, train_bn, style)
    return [c1] + resnet_stages(c1, architecture, stage5, train_bn, style)


def resnet_model(architecture, channels=3, train_bn=True):
    """A standalone keras.Model of the backbone, input [batch, h, w, channels] -> C2..C5."""
    image = keras.Input(shape=[None, None, channels], name="input_image")
    _, c2, c3, c4, c5 = resnet_graph(image, architecture, stage5=True, train_bn=train_bn)
    return keras.Model(image, [c2, c3, c4, c5], name=architecture)
