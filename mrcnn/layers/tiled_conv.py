"""TiledConv2D: a stride-1 "same" convolution computed on overlapping tiles of each image.

oneDNN (TensorFlow's CPU convolutions on x86) spreads a convolution of one image over its
threads less well than the same work as a batch of several images. Cutting the map into
tiles x tiles tiles, each with the kernel's halo, stacking them in the batch, convolving them
without padding and putting the results back gives the same numbers bit for bit, faster.
Measured on a 2-core Intel Xeon (AVX-512), a forward 3x3 conv, 2 threads:

    map, channels           one image   2x2 tiles
    256x256, 256 -> 512     133 G/s     170 G/s   (multiply-adds per second)
    128x128, 256 -> 256     140 G/s     158 G/s
    256x256,  64 ->  64     177 G/s     139 G/s   (narrow: slower, not used there)

The backward passes gained little from tiles (a 5% faster filter gradient, an input gradient
no faster), so the gradients are those of the untiled convolution, computed on the whole map:
training gets the forward pass's gain. In bfloat16 (AMX) the whole inference was 8-15%
slower tiled, so only float32 models tile (Config.CONV_TILES), and only the wide 3x3 convs of
the FPN and the RPN; whole-model figures under TiledConv2D.
"""

import keras
import tensorflow as tf

__all__ = ["TiledConv2D", "tiled_conv2d"]


def _tiled_forward(inputs, kernel, tiles):
    """tiled_conv2d's value (no custom gradient): pad, cut, convolve "VALID", reassemble."""
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    ph, pw = kh // 2, kw // 2
    shape = tf.shape(inputs)
    batch, height, width = shape[0], shape[1], shape[2]
    th = (height + tiles - 1) // tiles
    tw = (width + tiles - 1) // tiles
    padded = tf.pad(inputs, [[0, 0], [ph, th * tiles - height + ph],
                             [pw, tw * tiles - width + pw], [0, 0]])
    parts = [padded[:, i * th:i * th + th + 2 * ph, j * tw:j * tw + tw + 2 * pw]
             for i in range(tiles) for j in range(tiles)]
    out = tf.nn.conv2d(tf.concat(parts, axis=0), kernel, strides=1, padding="VALID")
    filters = kernel.shape[-1]
    # [tile row, tile column, batch, th, tw, filters] -> [batch, rows, columns, filters]
    out = tf.reshape(out, [tiles, tiles, batch, th, tw, filters])
    out = tf.transpose(out, [2, 0, 3, 1, 4, 5])
    out = tf.reshape(out, [batch, tiles * th, tiles * tw, filters])
    return out[:, :height, :width]


def tiled_conv2d(inputs, kernel, tiles):
    """tf.nn.conv2d(inputs, kernel, 1, "SAME") computed on tiles x tiles tiles of each image.

    inputs: [batch, height, width, channels] (any height and width, also unknown until run
    time); kernel: [kh, kw, channels, filters] with odd kh and kw. Returns [batch, height,
    width, filters]. Each tile covers ceil(height / tiles) x ceil(width / tiles) output pixels
    plus a halo of kh // 2 and kw // 2 input pixels on each side; the map is zero-padded to a
    whole number of tiles (as "SAME" pads its border) and the result cropped back.
    The gradients are those of the untiled convolution (Conv2DBackpropInput and
    Conv2DBackpropFilter on the whole map).
    """
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"tiled_conv2d needs an odd kernel size, got {kh}x{kw}")

    @tf.custom_gradient
    def conv(x, k):
        def grad(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=k, out_backprop=dy, strides=[1, 1, 1, 1],
                padding="SAME")
            dk = tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=tf.shape(k), out_backprop=dy, strides=[1, 1, 1, 1],
                padding="SAME")
            return dx, dk
        return _tiled_forward(x, k, tiles), grad

    return conv(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))


@keras.saving.register_keras_serializable(package="mrcnn")
class TiledConv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D with the same arguments, weights and name, plus `tiles`: with
    tiles > 1 a stride-1, undilated, "same" convolution of a map at least `min_size` pixels
    high and wide runs as tiled_conv2d (tiles x tiles tiles per image); smaller maps, any
    other convolution, or tiles = 1 run as Conv2D does. The size is checked when traced if
    known then (the training model: no tf.cond in its graph), else by a tf.cond when it
    runs. Whole-model inference, ResNet-50, batch 1: 1024 px (P2 256x256, P3 128x128 tiled)
    6-11% faster; 512 px (P2 128x128) the same within the 5% noise; at 320 px with every map
    tiled it was 0-10% slower, hence min_size. channels_last only."""

    def __init__(self, *args, tiles=1, min_size=128, **kwargs):
        super().__init__(*args, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError(f"TiledConv2D {self.name}: data_format must be channels_last, "
                             f"got {self.data_format!r}")
        if int(tiles) < 1:
            raise ValueError(f"TiledConv2D {self.name}: tiles must be >= 1, got {tiles}")
        self.tiles = int(tiles)
        self.min_size = int(min_size)

    def _tiled(self):
        return (self.tiles > 1 and self.padding == "same" and tuple(self.strides) == (1, 1)
                and tuple(self.dilation_rate) == (1, 1) and self.groups == 1
                and all(k % 2 for k in self.kernel_size))

    def convolution_op(self, inputs, kernel):
        if not self._tiled():
            return super().convolution_op(inputs, kernel)
        height, width = inputs.shape[1], inputs.shape[2]
        if height is not None and width is not None:  # known when traced: no tf.cond
            if min(height, width) >= self.min_size:
                return tiled_conv2d(inputs, kernel, self.tiles)
            return super().convolution_op(inputs, kernel)
        shape = tf.shape(inputs)
        return tf.cond(tf.minimum(shape[1], shape[2]) >= self.min_size,
                       lambda: tiled_conv2d(inputs, kernel, self.tiles),
                       lambda: super(TiledConv2D, self).convolution_op(inputs, kernel))

    def get_config(self):
        return {**super().get_config(), "tiles": self.tiles, "min_size": self.min_size}
