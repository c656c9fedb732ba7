"""GroupedConv2D: keras.layers.Conv2D(groups > 1) on TensorFlow's own grouped convolution.

Keras 3 computes every grouped convolution on the TensorFlow backend inside an XLA-compiled
function (TensorFlow's plain CPU kernels cannot compute a grouped convolution's filter
gradient). On a CPU with oneDNN (TensorFlow's default on x86), XLA's grouped convolution is
two orders of magnitude slower than TensorFlow's own: measured here, forward plus both
gradients of a 3x3, 32-group, 256-channel conv on a 32x32 map took 1.39 s under XLA and 4.6 ms
with tf.nn.conv2d (same results within 1e-6). ResNeXt's grouped 3x3 convs made a training step
5.5 times slower than ResNet-50's that way.
"""

import functools

import keras
import tensorflow as tf

__all__ = ["GroupedConv2D", "native_grouped_conv"]


@functools.cache
def native_grouped_conv():
    """True when TensorFlow's own kernels compute grouped convolutions and their gradients:
    oneDNN is on (TF_ENABLE_ONEDNN_OPTS, default on x86) or a GPU is visible (cuDNN)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled() or tf.config.list_physical_devices("GPU"))


@keras.saving.register_keras_serializable(package="mrcnn")
class GroupedConv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D with the same arguments, weights (kernel [kh, kw, in / groups, out])
    and config, channels_last only. Calls tf.nn.conv2d when native_grouped_conv(), else
    Keras' own (XLA) op."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError(f"GroupedConv2D {self.name}: data_format must be channels_last, "
                             f"got {self.data_format!r}")

    def convolution_op(self, inputs, kernel):
        if not native_grouped_conv():
            return super().convolution_op(inputs, kernel)
        return tf.nn.conv2d(inputs, kernel, strides=list(self.strides),
                            padding=self.padding.upper(), dilations=list(self.dilation_rate))
