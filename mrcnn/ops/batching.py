"""Zero-padding helpers: trimming padded rows, packing ragged rows, and matterport's batch_slice."""

import numpy as np
import tensorflow as tf

__all__ = ["trim_zeros", "trim_zeros_graph", "batch_pack_graph", "batch_slice"]


def trim_zeros(x):
    """Removes all-zero rows of a [N, C] array (NumPy)."""
    assert len(x.shape) == 2
    return x[~np.all(x == 0, axis=1)]


def trim_zeros_graph(boxes, name="trim_zeros"):
    """Removes all-zero rows of boxes [N, 4] (TensorFlow). Returns (boxes, non_zeros bool [N])."""
    non_zeros = tf.cast(tf.reduce_sum(tf.abs(boxes), axis=1), tf.bool)
    boxes = tf.boolean_mask(boxes, non_zeros, name=name)
    return boxes, non_zeros


def batch_pack_graph(x, counts, num_rows=None):
    """Concatenates the first counts[i] rows of each x[i] (TensorFlow, no Python loop).

    x: [batch, N, ...]; counts: [batch] int. num_rows is accepted for matterport compatibility and
    ignored (the batch size is read from x). Returns [sum(counts), ...].
    """
    del num_rows
    n = tf.shape(x)[1]
    mask = tf.range(n)[None, :] < tf.cast(counts, tf.int32)[:, None]
    return tf.boolean_mask(x, mask)


def batch_slice(inputs, graph_fn, batch_size, names=None):
    """matterport's helper: runs graph_fn on each batch item and stacks the results.

    Kept for user code that calls it; mrcnn's own layers are vectorized and do not use it.
    inputs: a list of tensors with a leading batch dimension of size batch_size.
    """
    if not isinstance(inputs, list):
        inputs = [inputs]
    outputs = []
    for i in range(batch_size):
        output_slice = graph_fn(*[x[i] for x in inputs])
        if not isinstance(output_slice, (tuple, list)):
            output_slice = [output_slice]
        outputs.append(output_slice)
    outputs = list(zip(*outputs))
    if names is None:
        names = [None] * len(outputs)
    result = [tf.stack(o, axis=0, name=n) for o, n in zip(outputs, names)]
    if len(result) == 1:
        result = result[0]
    return result
