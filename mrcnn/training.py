"""Training machinery: layer presets, trainability, the losses of a batch and the train step
with its non-finite guard. The callbacks that write checkpoints and stop a diverging run are
in training_callbacks.py (their names stay importable from here).

Log directories and checkpoints (matterport's scheme, see checkpoints.py):
    <model_dir>/<name><YYYYMMDDTHHMM>/mask_rcnn_<name>_<EEEE>.h5   (+ resume_<name>.h5)
<name> is config.NAME lowercased and EEEE the 1-based number of the epoch that produced the
checkpoint; `epochs` passed to train() is the cumulative total, so loading the checkpoint of epoch
3 and calling train(epochs=5) runs epochs 4 and 5 in the same directory.
"""

import re

import keras
import numpy as np
import tensorflow as tf

from mrcnn import losses as L
from mrcnn.builder import TRAINING_OUTPUTS
from mrcnn.checkpoints import (  # noqa: F401  (re-exported: training's public names)
    CHECKPOINT_FILE_RE,
    CHECKPOINT_RE,
    TrainingState,
    find_last_checkpoint,
    log_dir_for,
    parse_checkpoint_path,
    prune_checkpoints,
    write_checkpoint,
)
from mrcnn.config import KEYPOINT_LOSS_NAMES, LOSS_NAMES, MASK_SCORING_LOSS_NAMES
from mrcnn.layers.graph_utils import BatchNorm
from mrcnn.ops.image_meta import active_class_ids_graph
from mrcnn.training_callbacks import (  # noqa: F401  (re-exported)
    CheckpointCallback,
    NonFiniteGuard,
    NonFiniteLossError,
    _rng_variables,
    capture_state,
    restore_state,
    resume_position,
)

__all__ = ["LAYER_REGEX", "set_trainable", "TrainingModel", "CheckpointCallback",
           "NonFiniteGuard", "NonFiniteLossError", "capture_state",
           "restore_state", "log_dir_for", "parse_checkpoint_path", "find_last_checkpoint",
           "compute_losses"]

LAYER_REGEX = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}



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
    scalar: the five of LOSS_NAMES (the mask loss 0 without a mask head),
    mrcnn_keypoint_loss when the model has a keypoint head and mrcnn_maskiou_loss when it has
    the MaskIoU head (Config.MASK_SCORING)."""
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
    if "mrcnn_maskiou" in o:
        losses["mrcnn_maskiou_loss"] = L.mrcnn_maskiou_loss_graph(
            o["target_maskiou"], o["target_class_ids"], o["mrcnn_maskiou"])
    return losses


def _moving_statistics(net):
    """Variables that the forward pass itself updates: the moving mean and variance of
    BatchNorm layers that train (frozen ones never update theirs)."""
    def walk(layers):
        for layer in layers:
            yield layer
            if isinstance(layer, keras.Model):
                yield from walk(layer.layers)
            inner = getattr(layer, "layer", None)  # TimeDistributed
            if isinstance(inner, keras.layers.Layer):
                yield from walk([inner])

    found = []
    for layer in walk(net.layers):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable \
                and not getattr(layer, "frozen", False):
            found += [v for v in (layer.moving_mean, layer.moving_variance)
                      if not any(v is f for f in found)]  # a shared layer counts once
    return found


class TrainingModel(keras.Model):
    """Wraps the functional training graph with a train/test step that computes the losses.

    Args:
        net: the functional model of builder.build_training_model.
        loss_weights: dict loss name -> weight (Config.LOSS_WEIGHTS).
        weight_decay: L2 factor (Config.WEIGHT_DECAY), see losses.l2_weight_decay.
        output_names: names of net's outputs (builder.training_output_names(config)); default
            TRAINING_OUTPUTS.
        batch_size: the global batch size (Config.BATCH_SIZE), for step_image_ids.
    Metrics reported: loss (the weighted total incl. weight decay), each loss (the five, and
    mrcnn_keypoint_loss with a keypoint head, mrcnn_maskiou_loss with the MaskIoU head; means
    over the epoch's finite steps) and
    nonfinite_steps (steps skipped this epoch).

    A step whose loss (or, without a LossScaleOptimizer, any gradient) is not finite on any
    replica is not applied: neither the weights, the optimizer state (momentum, iteration
    count) nor BatchNorm moving statistics change. step_finite (1.0/0.0), step_losses
    ([total] + loss_names, global batch) and step_image_ids ([batch_size] dataset image ids
    from input_image_meta) describe the last step, for NonFiniteGuard.
    """

    def __init__(self, net, loss_weights, weight_decay, output_names=None, batch_size=1,
                 **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.net_output_names = list(output_names or TRAINING_OUTPUTS)
        self.loss_names = LOSS_NAMES + (
            KEYPOINT_LOSS_NAMES if "mrcnn_keypoint" in self.net_output_names else ()) + (
            MASK_SCORING_LOSS_NAMES if "mrcnn_maskiou" in self.net_output_names else ())
        self.loss_weights = {k: float(loss_weights.get(k, 1.0)) for k in self.loss_names}
        self.weight_decay = float(weight_decay)
        self.batch_size = int(batch_size)
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss",) + self.loss_names}
        self.trackers["nonfinite_steps"] = keras.metrics.Sum(name="nonfinite_steps")
        # Equal on every replica (values are reduced first): the first replica's copy is it.
        last = dict(trainable=False, aggregation="only_first_replica")
        self.step_finite = keras.Variable(1.0, name="step_finite", **last)
        self.step_losses = keras.Variable(np.zeros(len(self.loss_names) + 1, np.float32),
                                          name="step_losses", **last)
        self.step_image_ids = keras.Variable(np.full(self.batch_size, -1, np.int32),
                                             dtype="int32", name="step_image_ids", **last)

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

    @staticmethod
    def _replicas():
        ctx = tf.distribute.get_replica_context()
        return ctx if ctx is not None and ctx.num_replicas_in_sync > 1 else None

    def _global(self, total, parts):
        """Replicas hold shares of the global values: their sums."""
        ctx = self._replicas()
        if ctx is not None:
            total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, total)
            parts = {k: ctx.all_reduce(tf.distribute.ReduceOp.SUM, v) for k, v in parts.items()}
        return total, parts

    def _record(self, total, parts, finite=None):
        """Updates the trackers with global values; with `finite`, a non-finite step only
        counts in nonfinite_steps."""
        weight = tf.constant(1.0) if finite is None else tf.cast(finite, tf.float32)
        for name, value in (("loss", total),) + tuple(parts.items()):
            value = tf.cast(value, tf.float32)
            if finite is not None:
                value = tf.where(finite, value, 0.0)
            self.trackers[name].update_state(value, sample_weight=weight)
        if finite is None:
            logs = {k: t.result() for k, t in self.trackers.items() if k != "nonfinite_steps"}
        else:
            ctx = self._replicas()
            replicas = 1 if ctx is None else ctx.num_replicas_in_sync
            # Metric variables sum over replicas when read.
            self.trackers["nonfinite_steps"].update_state((1.0 - weight) / replicas)
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

    def step_is_finite(self, total, parts, grads):
        """Scalar bool, the same on every replica: the loss, its parts and (unless the
        optimizer is a LossScaleOptimizer, which skips overflowing scaled gradients itself and
        lowers its scale) every gradient are finite on every replica."""
        checks = [tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float32)))
                  for v in [total] + list(parts.values())]
        if not isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            checks += [tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None]
        finite = tf.reduce_all(tf.stack(checks))
        ctx = self._replicas()
        if ctx is not None:
            bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
            finite = bad < 0.5
        return finite

    def _apply_if_finite(self, finite, grads):
        """optimizer.apply_gradients when `finite`, else nothing. In graph (tf.cond); under a
        distribution strategy the cond is taken in cross-replica context, as Keras'
        LossScaleOptimizer does: apply_gradients merges replicas, which a replica-context cond
        branch must not do."""
        variables = self.net.trainable_variables

        def apply(grads):
            self.optimizer.apply_gradients(zip(grads, variables))

        ctx = tf.distribute.get_replica_context()
        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.cond(finite, lambda: apply(grads), lambda: None)
            return

        def cross_replica(distribution, finite, grads):
            first = distribution.experimental_local_results(finite)[0]

            def apply_everywhere():
                distribution.extended.call_for_each_replica(apply, args=(grads,))

            tf.cond(first, apply_everywhere, lambda: None)

        ctx.merge_call(cross_replica, args=(finite, grads))

    def _remember_step(self, finite, total, parts, image_meta):
        """Stores the last step's finiteness, global losses and image ids (for the guard)."""
        ids = tf.cast(image_meta[:, 0], tf.int32)
        ctx = self._replicas()
        if ctx is not None:
            ids = ctx.all_gather(ids, axis=0)
        ids = tf.concat([ids, tf.fill([self.batch_size], -1)], axis=0)[:self.batch_size]
        self.step_finite.assign(tf.cast(finite, tf.float32))
        self.step_losses.assign(tf.stack([tf.cast(v, tf.float32) for v in
                                          [total] + [parts[k] for k in self.loss_names]]))
        self.step_image_ids.assign(ids)

    def train_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        moving = _moving_statistics(self.net)
        before = [tf.identity(v.value) for v in moving]  # read before the forward pass
        total, parts, grads = self.compute_gradients(inputs, scaled=True)
        grads = self._clip_global_gradients(grads)
        finite = self.step_is_finite(total, parts, grads)
        # The optimizer sums gradients over replicas (tf.distribute), which is what we want; a
        # LossScaleOptimizer unscales them and skips steps whose gradients are not finite.
        self._apply_if_finite(finite, grads)
        for v, old in zip(moving, before):  # a skipped step leaves no trace in BatchNorm
            v.assign(tf.where(finite, v.value, old))
        total, parts = self._global(total, parts)
        self._remember_step(finite, total, parts, inputs["input_image_meta"])
        return self._record(total, parts, finite)

    def test_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        total, parts = self._global(*self._total_loss(inputs, training=False))
        return self._record(total, parts)


# ---------------------------------------------------------------------- training state
