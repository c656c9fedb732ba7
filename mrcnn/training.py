"""Training machinery: layer presets, trainability, the train step, checkpoints and log dirs.

Log directories and checkpoints (matterport's scheme):
    <model_dir>/<name><YYYYMMDDTHHMM>/mask_rcnn_<name>_<EEEE>.h5
<name> is config.NAME lowercased and EEEE the 1-based number of the epoch that produced the
checkpoint; `epochs` passed to train() is the cumulative total, so loading the checkpoint of epoch
3 and calling train(epochs=5) runs epochs 4 and 5 in the same directory.
"""

import datetime
import os
import re

import keras
import tensorflow as tf

from mrcnn import losses as L
from mrcnn.builder import TRAINING_OUTPUTS
from mrcnn.config import KEYPOINT_LOSS_NAMES, LOSS_NAMES
from mrcnn.layers.graph_utils import BatchNorm
from mrcnn.ops.image_meta import active_class_ids_graph
from mrcnn.weights import save_weights_h5

__all__ = ["LAYER_REGEX", "set_trainable", "TrainingModel", "CheckpointCallback",
           "log_dir_for", "parse_checkpoint_path", "find_last_checkpoint", "compute_losses"]

LAYER_REGEX = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}

CHECKPOINT_RE = re.compile(
    r"^(?P<name>[\w-]+?)(?P<stamp>\d{8}T\d{4})$")
CHECKPOINT_FILE_RE = re.compile(r"^mask_rcnn_(?P<name>[\w-]+)_(?P<epoch>\d{4,})\.h5$")


def _is_frozen_bn(layer):
    inner = getattr(layer, "layer", layer)
    return isinstance(inner, BatchNorm) and inner.frozen


def set_trainable(keras_model, layer_regex, verbose=0, indent=0):
    """Marks layers trainable when their name fully matches layer_regex (a preset name of
    LAYER_REGEX or a regex), others frozen. Recurses into nested models (rpn_model) and sets a
    TimeDistributed wrapper and its inner layer alike. Frozen BatchNorm layers (TRAIN_BN=False)
    stay frozen. Returns the names of the trainable layers."""
    regex = LAYER_REGEX.get(layer_regex, layer_regex)
    trainable_names = []
    for layer in keras_model.layers:
        if isinstance(layer, keras.Model):
            if verbose:
                print(" " * indent + f"In model: {layer.name}")
            trainable_names += set_trainable(layer, regex, verbose, indent + 4)
            layer.trainable = any(sub.trainable for sub in layer.layers if sub.weights)
            continue
        if not layer.weights:
            continue
        trainable = bool(re.fullmatch(regex, layer.name)) and not _is_frozen_bn(layer)
        layer.trainable = trainable
        if trainable:
            trainable_names.append(layer.name)
        if verbose and trainable:
            print(" " * indent + f"{layer.name:20}   ({layer.__class__.__name__})")
    return trainable_names


def compute_losses(inputs, outputs, output_names=None):
    """The losses from the training model's inputs (dict) and outputs, named by output_names
    (builder.training_output_names; default TRAINING_OUTPUTS). Returns a dict loss name ->
    scalar: the five of LOSS_NAMES (the mask loss 0 without a mask head), and
    mrcnn_keypoint_loss when the model has a keypoint head."""
    # Under mixed precision some outputs are float16/bfloat16: every loss is float32.
    o = {k: tf.cast(v, tf.float32) if v.dtype.is_floating else v
         for k, v in zip(output_names or TRAINING_OUTPUTS, outputs)}
    roi_valid = tf.reduce_sum(tf.abs(o["output_rois"]), axis=-1) > 0
    active = active_class_ids_graph(tf.cast(inputs["input_image_meta"], tf.float32))
    losses = {
        "rpn_class_loss": L.rpn_class_loss_graph(inputs["input_rpn_match"],
                                                 o["rpn_class_logits"]),
        "rpn_bbox_loss": L.rpn_bbox_loss_graph(None, inputs["input_rpn_bbox"],
                                               inputs["input_rpn_match"], o["rpn_bbox"]),
        "mrcnn_class_loss": L.mrcnn_class_loss_graph(o["target_class_ids"],
                                                     o["mrcnn_class_logits"], active, roi_valid),
        "mrcnn_bbox_loss": L.mrcnn_bbox_loss_graph(o["target_bbox"], o["target_class_ids"],
                                                   o["mrcnn_bbox"]),
        "mrcnn_mask_loss": tf.constant(0.0),
    }
    if "mrcnn_mask" in o:
        mask_rows = tf.shape(o["mrcnn_mask"])[1]  # the mask head sees the first ROIs only
        losses["mrcnn_mask_loss"] = L.mrcnn_mask_loss_graph(
            o["target_mask"][:, :mask_rows], o["target_class_ids"][:, :mask_rows],
            o["mrcnn_mask"])
    if "mrcnn_keypoint" in o:
        losses["mrcnn_keypoint_loss"] = L.mrcnn_keypoint_loss_graph(
            o["target_keypoint_indices"], o["target_keypoint_valid"], o["target_class_ids"],
            o["mrcnn_keypoint"])
    return losses


class TrainingModel(keras.Model):
    """Wraps the functional training graph with a train/test step that computes the losses.

    Args:
        net: the functional model of builder.build_training_model.
        loss_weights: dict loss name -> weight (Config.LOSS_WEIGHTS).
        weight_decay: L2 factor (Config.WEIGHT_DECAY), see losses.l2_weight_decay.
        output_names: names of net's outputs (builder.training_output_names(config)); default
            TRAINING_OUTPUTS.
    Metrics reported: loss (the weighted total incl. weight decay) and each loss (the five,
    and mrcnn_keypoint_loss with a keypoint head).
    """

    def __init__(self, net, loss_weights, weight_decay, output_names=None, **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.net_output_names = list(output_names or TRAINING_OUTPUTS)
        self.loss_names = LOSS_NAMES + (
            KEYPOINT_LOSS_NAMES if "mrcnn_keypoint" in self.net_output_names else ())
        self.loss_weights = {k: float(loss_weights.get(k, 1.0)) for k in self.loss_names}
        self.weight_decay = float(weight_decay)
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss",) + self.loss_names}

    def call(self, inputs, training=False):
        return self.net(inputs, training=training)

    def compile(self, optimizer, **kwargs):
        """Keras' compile, then builds the optimizer for the trainable weights of now (call
        set_trainable first). Built inside the first traced step instead, its new variables
        would make TensorFlow trace that step twice, and a LossScaleOptimizer's scale would be
        traced in as a constant."""
        super().compile(optimizer=optimizer, **kwargs)
        self.optimizer.build(self.net.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build: the net is built, the optimizer is built in compile() and there
        are no compiled losses or metrics. Keras' version pulls a batch and calls
        strategy.reduce("MEAN", batch) on the whole nested batch, which
        MultiWorkerMirroredStrategy rejects ("Attempt to convert a value ({'input_image':
        PerReplica...}) ... to a Tensor", issue 22)."""

    def _total_loss(self, inputs, training):
        """This replica's share of the global-batch loss (see losses._masked_mean), and the
        per-loss values."""
        outputs = self.net(inputs, training=training)
        parts = compute_losses(inputs, outputs, self.net_output_names)
        total = tf.add_n([parts[k] * self.loss_weights[k] for k in self.loss_names])
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        # Every replica adds the decay of the same (mirrored) weights: count it once in total.
        total = total + L.l2_weight_decay(self.net.trainable_weights, self.weight_decay) / replicas
        return total, parts

    def _record(self, total, parts):
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            # Replicas hold shares of the global values: report their sums.
            total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, total)
            parts = {k: ctx.all_reduce(tf.distribute.ReduceOp.SUM, v) for k, v in parts.items()}
        self.trackers["loss"].update_state(total)
        for k, v in parts.items():
            self.trackers[k].update_state(v)
        logs = {k: t.result() for k, t in self.trackers.items()}
        strategy = tf.distribute.get_strategy()
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
                strategy.extended._in_multi_worker_mode():
            # Keras reduces step outputs over several workers with strategy.reduce("MEAN", v,
            # axis=0), which fails on scalars: give it [1] vectors (it returns scalars). Every
            # replica holds the same global values here, so their mean is that value.
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    def compute_gradients(self, inputs, scaled=False):
        """(total loss share, per-loss shares, gradients) of one step, without applying them.
        Summed over replicas, these equal the single-device values on the global batch.

        scaled: True returns the gradients of the optimizer's scaled loss (a
        keras.optimizers.LossScaleOptimizer under "mixed_float16"), which is what its
        apply_gradients expects; False returns the true gradients."""
        variables = self.net.trainable_variables
        with tf.GradientTape() as tape:
            total, parts = self._total_loss(inputs, training=True)
            scale = tf.cast(self.optimizer.scale_loss(tf.constant(1.0)), total.dtype)
            scaled_total = total * scale
        grads = tape.gradient(scaled_total, variables)
        if not scaled:
            grads = [None if g is None else g / tf.cast(scale, g.dtype) for g in grads]
        return total, parts, grads

    def _clip_global_gradients(self, grads):
        """Under several replicas, Keras' optimizer clips (clipnorm) each replica's share of
        the gradient before it sums the shares, which is not the clipped global gradient. So
        sum the shares here, clip the sum as one device would, and give each replica 1/R of
        it: the optimizer's clipping then leaves it (its norm is <= clipnorm / R) and the
        optimizer's sum restores it. grads are scaled by a LossScaleOptimizer's scale (if any);
        clipping sees the unscaled ones."""
        ctx = tf.distribute.get_replica_context()
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        if ctx is None or ctx.num_replicas_in_sync == 1 or not inner.clipnorm:
            return grads
        index = [i for i, g in enumerate(grads) if g is not None]
        summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in index])
        scale = tf.cast(self.optimizer.scale_loss(tf.constant(1.0)), tf.float32)
        share = scale / ctx.num_replicas_in_sync
        grads = list(grads)
        for i, g in zip(index, summed):
            grads[i] = inner._clip_by_norm(g / scale) * tf.cast(share, g.dtype)
        return grads

    def train_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        total, parts, grads = self.compute_gradients(inputs, scaled=True)
        grads = self._clip_global_gradients(grads)
        # The optimizer sums gradients over replicas (tf.distribute), which is what we want; a
        # LossScaleOptimizer unscales them and skips steps whose gradients are not finite.
        self.optimizer.apply_gradients(zip(grads, self.net.trainable_variables))
        return self._record(total, parts)

    def test_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        total, parts = self._total_loss(inputs, training=False)
        return self._record(total, parts)


class CheckpointCallback(keras.callbacks.Callback):
    """Writes the inner model's weights after every epoch, atomically (see weights.save_weights_h5).

    path_template: a path with an {epoch:04d} field; Keras' 0-based epoch index + 1 fills it.
    """

    def __init__(self, keras_model, path_template):
        super().__init__()
        self.keras_model = keras_model
        self.path_template = path_template

    def on_epoch_end(self, epoch, logs=None):
        save_weights_h5(self.keras_model, self.path_template.format(epoch=epoch + 1))


def log_dir_for(model_dir, name, now=None):
    """<model_dir>/<name><YYYYMMDDTHHMM>."""
    now = now or datetime.datetime.now()
    return os.path.join(model_dir, f"{name.lower()}{now:%Y%m%dT%H%M}")


def parse_checkpoint_path(path, name=None):
    """(log_dir, epoch) of a checkpoint path following the naming scheme, else None.

    Accepts matterport's <dir>/<name><stamp>/mask_rcnn_<name>_<EEEE>.h5 names. With `name`,
    the directory and file must belong to that config name.
    """
    path = os.path.abspath(str(path))
    directory, filename = os.path.split(path)
    m_file = CHECKPOINT_FILE_RE.match(filename)
    m_dir = CHECKPOINT_RE.match(os.path.basename(directory))
    if not m_file or not m_dir:
        return None
    if m_file.group("name") != m_dir.group("name"):
        return None
    if name is not None and m_dir.group("name") != name.lower():
        return None
    return directory, int(m_file.group("epoch"))


def find_last_checkpoint(model_dir, name):
    """Newest checkpoint of config name `name` in model_dir: the latest run directory
    <name><stamp> (exact name match, by timestamp) holding a checkpoint, and in it the
    checkpoint with the highest epoch. Raises FileNotFoundError saying what was searched."""
    name = name.lower()
    runs = []
    if os.path.isdir(model_dir):
        for d in os.listdir(model_dir):
            m = CHECKPOINT_RE.match(d)
            if m and m.group("name") == name and os.path.isdir(os.path.join(model_dir, d)):
                runs.append((m.group("stamp"), d))
    for _, d in sorted(runs, reverse=True):
        found = []
        for f in os.listdir(os.path.join(model_dir, d)):
            m = CHECKPOINT_FILE_RE.match(f)
            if m and m.group("name") == name:
                found.append((int(m.group("epoch")), f))
        if found:
            return os.path.join(model_dir, d, max(found)[1])
    raise FileNotFoundError(
        f"Could not find a checkpoint of '{name}' in {model_dir} (looked for "
        f"{name}YYYYMMDDTHHMM/mask_rcnn_{name}_EEEE.h5)")
