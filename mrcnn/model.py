"""matterport's mrcnn.model: the MaskRCNN class and the names users import from this module.

    from mrcnn import model as modellib
    model = modellib.MaskRCNN(mode="inference", config=config, model_dir="logs")
    model.load_weights(path, by_name=True)
    results = model.detect([image])   # [{"rois", "class_ids", "scores", "masks"}]

The pieces live in focused modules (builder, layers, heads, losses, targets, data_generator,
training, inference, weights); this module ties them together and re-exports their names.
"""

import datetime
import logging
import os

import keras
import numpy as np
import tensorflow as tf

from mrcnn import builder, checkpoints, distributed, inference, precision, training
from mrcnn import weights as weights_io
from mrcnn.backbone import build_backbone, fpn_graph
from mrcnn.backbone.resnet import conv_block, identity_block, resnet_graph
from mrcnn.data_generator import DataGenerator, data_generator, load_image_gt
from mrcnn.heads.fpn_heads import build_fpn_mask_graph, fpn_classifier_graph
from mrcnn.heads.rpn import build_rpn_model, rpn_graph
from mrcnn.layers import (
    BatchNorm,
    DetectionLayer,
    DetectionTargetLayer,
    ProposalLayer,
    PyramidROIAlign,
)
from mrcnn.layers.detection import refine_detections_graph
from mrcnn.layers.detection_target import detection_targets_graph
from mrcnn.losses import (
    mrcnn_bbox_loss_graph,
    mrcnn_class_loss_graph,
    mrcnn_mask_loss_graph,
    rpn_bbox_loss_graph,
    rpn_class_loss_graph,
    smooth_l1_loss,
)
from mrcnn.ops.anchors import compute_backbone_shapes
from mrcnn.ops.batching import batch_pack_graph, trim_zeros_graph
from mrcnn.ops.boxes import (
    apply_box_deltas_graph,
    clip_boxes_graph,
    denorm_boxes_graph,
    norm_boxes,
    norm_boxes_graph,
    overlaps_graph,
)
from mrcnn.ops.image import mold_image, unmold_image
from mrcnn.ops.image_meta import compose_image_meta, parse_image_meta, parse_image_meta_graph
from mrcnn.targets import build_detection_targets, build_rpn_targets, generate_random_rois

logger = logging.getLogger(__name__)


def log(text, array=None):
    """Prints a text message and, for an array, its shape, min, max and dtype."""
    if array is not None:
        array = np.asarray(array)
        text = text.ljust(25)
        if array.size:
            text += f"shape: {str(array.shape):20}  min: {array.min():10.5f}  " \
                    f"max: {array.max():10.5f}  {array.dtype}"
        else:
            text += f"shape: {str(array.shape):20}  min: {'':10}  max: {'':10}  {array.dtype}"
    print(text)


def log2_graph(x):
    """Log base 2 (TensorFlow)."""
    return tf.math.log(x) / tf.math.log(2.0)


def default_strategy(config):
    """MirroredStrategy over the first GPU_COUNT GPUs when GPU_COUNT > 1, else TF's default."""
    if config.GPU_COUNT <= 1:
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) < config.GPU_COUNT:
        raise ValueError(f"GPU_COUNT = {config.GPU_COUNT} but {len(gpus)} GPU(s) are visible; "
                         "pass strategy= to use other devices")
    return tf.distribute.MirroredStrategy([g.name for g in gpus[:config.GPU_COUNT]])


class MaskRCNN:
    """Mask R-CNN: builds the Keras model and trains it or runs detection.

    mode: "training" or "inference". config: a Config. model_dir: where training runs write
    their log directories and checkpoints. The Keras model is self.keras_model.
    """

    def __init__(self, mode, config, model_dir, strategy=None):
        """strategy: a tf.distribute strategy to build and train under. Default: a
        MirroredStrategy over the first GPU_COUNT GPUs when GPU_COUNT > 1, else none. For
        several machines pass tf.distribute.MultiWorkerMirroredStrategy() (TF_CONFIG set) and
        set GPU_COUNT to the total number of replicas; IMAGES_PER_GPU is the per-replica batch.
        """
        if mode not in ("training", "inference"):
            raise ValueError(f"mode must be 'training' or 'inference', got {mode!r}")
        if not config.NAME:
            raise ValueError(f"{type(config).__name__}.NAME must be set (it names log "
                             "directories and checkpoints)")
        self.mode = mode
        self.config = config
        self.model_dir = model_dir
        self._anchor_cache = {}
        self.strategy = strategy if strategy is not None else default_strategy(config)
        self.set_log_dir()
        with self.strategy.scope():
            self.keras_model = self.build(mode=mode, config=config)

    def build(self, mode, config):
        """Builds the functional Keras model of the given mode."""
        if mode == "training":
            return builder.build_training_model(config)
        return builder.build_inference_model(config)

    # ------------------------------------------------------------------ checkpoints
    def find_last(self):
        """Path of the newest good checkpoint of this config's NAME in model_dir: the newest
        run's latest per-epoch file, or its resume_<name>.h5 when that is further (a run
        stopped mid-epoch). Truncated or unreadable files are skipped with a warning naming
        them (checkpoints.find_last_checkpoint)."""
        return training.find_last_checkpoint(self.model_dir, self.config.NAME)

    def load_weights(self, filepath, by_name=False, exclude=None, skip_mismatch=False,
                     verbose=1):
        """Loads weights from a Keras 2 layout h5 file (matterport's files and mrcnn
        checkpoints) or a Keras 3 '.weights.h5' file, then points the log directory at the
        checkpoint's run so that train() continues its epoch count. When the file is a run's
        resume_<name>.h5, or the per-epoch file written with it, the next train() also
        restores the optimizer state and continues at the stored step with the same batches.

        exclude: layer names to skip (implies by_name). Returns a weights.LoadReport (None for
        a Keras 3 file)."""
        filepath = str(filepath)
        if filepath.endswith(".weights.h5"):
            if by_name or exclude:
                raise ValueError("by_name/exclude need a Keras 2 layout .h5 file; "
                                 f"{filepath} is a Keras 3 weights file")
            self.keras_model.load_weights(filepath)
            report = None
        else:
            report = weights_io.load_weights(self.keras_model, filepath, by_name=by_name,
                                             exclude=exclude, skip_mismatch=skip_mismatch,
                                             verbose=verbose)
        self.set_log_dir(filepath)
        try:
            self.resume_state = checkpoints.state_for_weights(filepath, self.config.NAME)
        except Exception as e:  # a damaged state must not prevent using the weights
            logger.warning("Ignoring the training state of %s: %s", filepath, e)
        return report

    def save_weights(self, filepath):
        """Saves weights: '.weights.h5' in Keras 3's format, any other '.h5' in the Keras 2
        layout that matterport-era tools read. Both are written atomically."""
        filepath = str(filepath)
        if filepath.endswith(".weights.h5"):
            tmp = filepath[:-len(".weights.h5")] + ".tmp.weights.h5"
            self.keras_model.save_weights(tmp)
            os.replace(tmp, filepath)
        else:
            weights_io.save_weights_h5(self.keras_model, filepath)

    def get_imagenet_weights(self, search=None, url=None):
        """Path of the ImageNet notop file of this backbone (resnet50 or resnet101), as
        matterport's method: found locally (search dirs, repository root, ../shared/data,
        the cache $MRCNN_CACHE_DIR or ~/.keras/models), else downloaded into the cache from url
        (default weights.IMAGENET_URLS) and checked by md5. See
        weights.find_imagenet_weights; a failed download raises download.DownloadError
        naming the URL and where to put the file by hand. For a ResNeXt backbone: torchvision's
        ImageNet .pth (torchvision_weights.download_torchvision_checkpoint, cache only)."""
        from mrcnn.backbone.resnext import RESNEXT_ARCHITECTURES

        if self.config.BACKBONE in RESNEXT_ARCHITECTURES:
            from mrcnn import torchvision_weights

            return torchvision_weights.download_torchvision_checkpoint(
                f"{self.config.BACKBONE}_imagenet", url=url)
        return weights_io.find_imagenet_weights(self.config.BACKBONE, search, url=url)

    def load_imagenet_weights(self, filepath=None, verbose=1):
        """Initialises the backbone from ImageNet weights: the classic Keras ResNet50 notop file
        (res2a_branch2a names), keras.applications' ResNet50/101 files (conv2_block1_1_conv
        names), or a torchvision classifier's .pth (resnet50/101, resnext50_32x4d,
        resnext101_32x8d; see torchvision_weights.load_torchvision_backbone_weights for the
        config it needs). Default path: get_imagenet_weights(). Returns a weights.LoadReport."""
        filepath = filepath or self.get_imagenet_weights()
        if str(filepath).endswith((".pth", ".pt")):
            from mrcnn import torchvision_weights

            return torchvision_weights.load_torchvision_backbone_weights(
                self.keras_model, self.config, filepath, verbose=verbose)
        return weights_io.load_imagenet_weights(self.keras_model, filepath, verbose=verbose)

    def load_torchvision_weights(self, path_or_state_dict, exclude=None, verbose=1):
        """Loads torchvision's maskrcnn_resnet50_fpn (v1 or v2) or keypointrcnn_resnet50_fpn
        weights (a .pth path or a state_dict).

        The config must reproduce torchvision's architecture: mrcnn.presets.
        TorchvisionMaskRCNNConfig, TorchvisionMaskRCNNV2Config or TorchvisionKeypointRCNNConfig
        (or a subclass). exclude: layer names to leave as they are,
        e.g. ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"] to fine-tune with another
        NUM_CLASSES. Raises torchvision_weights.TorchvisionWeightsError listing missing,
        unexpected and mismatched keys. Reading a file imports torch. Returns the number of
        tensors read."""
        from mrcnn import torchvision_weights

        return torchvision_weights.load_torchvision_weights(
            self.keras_model, self.config, path_or_state_dict, exclude=exclude, verbose=verbose)

    def set_log_dir(self, model_path=None):
        """Sets self.log_dir, self.checkpoint_path and self.epoch: a new run directory, or the
        run of model_path when it follows the checkpoint naming scheme (checkpoints module;
        for a resume_<name>.h5 file, epoch is the number of epochs it completed)."""
        self.epoch = 0
        self.resume_state = None  # set by load_weights
        parsed = training.parse_checkpoint_path(model_path, self.config.NAME) \
            if model_path else None
        if parsed:
            self.log_dir, self.epoch = parsed
        elif model_path and checkpoints.is_resume_file(model_path, self.config.NAME):
            self.log_dir = os.path.dirname(os.path.abspath(model_path))
            self.epoch = checkpoints.read_training_state(model_path).epoch
        else:
            self.log_dir = training.log_dir_for(self.model_dir, self.config.NAME,
                                                datetime.datetime.now())
        name = self.config.NAME.lower()
        # A template: CheckpointCallback fills {epoch:04d}.
        self.checkpoint_path = os.path.join(self.log_dir, f"mask_rcnn_{name}_{{epoch:04d}}.h5")

    # ------------------------------------------------------------------ training
    def set_trainable(self, layer_regex, keras_model=None, indent=0, verbose=1):
        """Trainable iff the layer name fully matches layer_regex (a preset or a regex)."""
        return training.set_trainable(keras_model or self.keras_model, layer_regex,
                                      verbose=verbose, indent=indent)

    def compile(self, learning_rate, momentum):
        """SGD with momentum and per-weight gradient norm clipping (clipping sees the unscaled
        gradients under mixed_float16's loss scaling); losses in the train step. Warns when
        mixed_float16 would train on a CPU (precision.warn_if_slow_training)."""
        precision.warn_if_slow_training(self.config.MIXED_PRECISION)
        with self.strategy.scope():
            optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                             clipnorm=self.config.GRADIENT_CLIP_NORM)
            if self.config.MIXED_PRECISION == "mixed_float16":
                # Dynamic loss scaling: float16 gradients would underflow without it.
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.trainer = training.TrainingModel(
                self.keras_model, self.config.LOSS_WEIGHTS, self.config.WEIGHT_DECAY,
                output_names=builder.training_output_names(self.config),
                batch_size=self.config.BATCH_SIZE)
            self.trainer.compile(optimizer=optimizer, jit_compile=bool(self.config.XLA))
        return self.trainer

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
              augmentation=None, custom_callbacks=None, no_augmentation_sources=None,
              workers=None, use_multiprocessing=False, seed=None, verbose=1):
        """Trains up to `epochs` (cumulative: a model at epoch 3 with epochs=5 runs 2 more).

        layers: "heads", "3+", "4+", "5+", "all" or a regex of layer names.
        val_dataset: validated on after every epoch (VALIDATION_STEPS batches); None: no
        validation. augmentation: imgaug augmenter for training images;
        no_augmentation_sources: dataset sources never augmented. workers: data loader
        threads (None: one per CPU core but one, at most 4). seed: the data order and
        augmentation seed (None: random, or the resumed checkpoint's). Losses go to the
        progress bar, the returned History and TensorBoard logs in self.log_dir.

        Checkpoints (README "When training stops"): mask_rcnn_<name>_<EEEE>.h5 per epoch, and
        resume_<name>.h5 (weights, optimizer state, position, seed) at every epoch end and
        every Config.CHECKPOINT_EVERY_STEPS steps. After load_weights of such a checkpoint,
        train() restores the optimizer and continues at its step with the batches the
        interrupted run would have seen. Steps whose loss or gradients are not finite are not
        applied; Config.MAX_NONFINITE_STEPS consecutive ones raise
        training.NonFiniteLossError.
        """
        if self.mode != "training":
            raise ValueError("Create model in training mode.")
        config = self.config
        steps = config.STEPS_PER_EPOCH
        state = self.resume_state
        seed, start_step = training.resume_position(state, seed, steps, config.BATCH_SIZE)
        cpu = os.cpu_count() or 1
        # Leave a core to TensorFlow: on 2 cores, 1 loader thread measured 226 ms per shapes
        # step against 241 ms with 2.
        workers = workers if workers is not None else max(1, min(cpu - 1, 4))

        train_gen = DataGenerator(train_dataset, config, shuffle=True, augmentation=augmentation,
                                  no_augmentation_sources=no_augmentation_sources, seed=seed,
                                  workers=workers, use_multiprocessing=use_multiprocessing)
        seed = train_gen.seed
        val_gen = None if val_dataset is None else DataGenerator(
            val_dataset, config, shuffle=True, steps=config.VALIDATION_STEPS, seed=seed + 1,
            workers=workers, use_multiprocessing=use_multiprocessing)
        if verbose:
            at = f"epoch {self.epoch}" + (f", step {start_step}" if start_step else "")
            print(f"\nStarting at {at}. LR={learning_rate}\n")
            print(f"Checkpoint Path: {self.checkpoint_path}")
        self.set_trainable(layers, verbose=verbose > 1)
        trainer = self.compile(learning_rate, config.LEARNING_MOMENTUM)
        if epochs <= self.epoch:
            return None
        if state is not None:
            training.restore_state(trainer, state)
        # Only the chief writes; other workers write into a temporary directory, then drop it.
        with distributed.worker_dir(self.log_dir, distributed.is_chief(self.strategy)) \
                as log_dir:
            start = (self.epoch, start_step)
            guard = training.NonFiniteGuard(trainer, config.MAX_NONFINITE_STEPS, steps, start,
                                            describe=train_gen.describe_image)
            saver = training.CheckpointCallback(
                self.keras_model, os.path.join(log_dir, os.path.basename(self.checkpoint_path)),
                trainer=trainer, resume_path=checkpoints.resume_file(log_dir, config.NAME),
                every_steps=config.CHECKPOINT_EVERY_STEPS, steps_per_epoch=steps, seed=seed,
                keep=config.KEEP_CHECKPOINTS, name=config.NAME, start=start,
                nonfinite_counter=guard)
            guard.checkpoints = saver
            if state is not None:
                guard.total = state.nonfinite_steps
            tensorboard = keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=0,
                                                      write_graph=False)
            # One endless input for all epochs (data_generator's docstring says why); each
            # replica gets its slice of global batch k (see mrcnn.distributed). Validation
            # restarts at its batch 0 every epoch: the same batches, comparable losses.
            val_data = val_gen and distributed.distribute_batches(self.strategy, val_gen, 0)

            def fit(first_batch, first_epoch, last_epoch, steps_per_epoch):
                data = distributed.distribute_batches(self.strategy, train_gen, first_batch)
                return trainer.fit(data, initial_epoch=first_epoch, epochs=last_epoch,
                                   steps_per_epoch=steps_per_epoch,
                                   callbacks=[tensorboard, guard, saver] +
                                   list(custom_callbacks or []),
                                   validation_data=val_data,
                                   validation_steps=config.VALIDATION_STEPS if val_gen else None,
                                   shuffle=False,  # the stream is ordered and seeded
                                   verbose=verbose)

            histories = []
            first = self.epoch
            if start_step:
                # The rest of the interrupted epoch: its remaining batches, then Keras continues
                # with whole epochs. Both fit calls share one traced train step.
                histories.append(fit(first * steps + start_step, first, first + 1,
                                     steps - start_step))
                first += 1
            if epochs > first and not trainer.stop_training:
                histories.append(fit(first * steps, first, epochs, steps))
        history = histories[-1]
        for earlier in histories[:-1]:
            history.epoch = earlier.epoch + history.epoch
            for k, v in earlier.history.items():
                history.history[k] = list(v) + list(history.history.get(k, []))
        self.epoch = max(self.epoch, epochs)
        self.resume_state = None
        return history

    # ------------------------------------------------------------------ inference
    def mold_inputs(self, images):
        """See inference.mold_inputs."""
        return inference.mold_inputs(images, self.config)

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape,
                          window, keypoint_maps=None):
        """See inference.unmold_detections."""
        return inference.unmold_detections(detections, mrcnn_mask, original_image_shape,
                                           image_shape, window, keypoint_maps)

    def get_anchors(self, image_shape):
        """Normalized anchors [A, 4] for a molded image shape (cached). Also sets self.anchors
        to the pixel anchors, as matterport did for its notebooks."""
        from mrcnn.data_generator import batch_anchors

        key = tuple(image_shape[:2])
        if key not in self._anchor_cache:
            a = batch_anchors(self.config, image_shape)
            self._anchor_cache[key] = (a, norm_boxes(a, image_shape[:2]))
        # The pixel anchors of the shape asked for, also when cached (matterport kept those
        # of the last shape computed, so another shape in between left stale anchors).
        self.anchors, normalized = self._anchor_cache[key]
        return normalized

    def _predict(self, molded_images, image_metas):
        if self.mode != "inference":
            raise ValueError("Create model in inference mode.")
        anchors = self.get_anchors(molded_images.shape[1:])
        anchors = np.broadcast_to(anchors, (molded_images.shape[0],) + anchors.shape)
        if not hasattr(self, "_predict_fn"):
            model = self.keras_model

            @tf.function(reduce_retracing=True, jit_compile=bool(self.config.XLA))
            def predict_fn(images, metas, anchors):
                return model([images, metas, anchors], training=False)

            self._predict_fn = predict_fn
        outputs = self._predict_fn(tf.constant(molded_images, tf.float32),
                                   tf.constant(image_metas, tf.float32),
                                   tf.constant(anchors, tf.float32))
        return [o.numpy() for o in outputs]

    def detect(self, images, verbose=0):
        """Runs detection on a list of images (any sizes, any count; [] gives []).

        Returns one dict per image: rois [N, (y1, x1, y2, x2)] int32 pixels of the original
        image, class_ids [N] int32, scores [N] float32, masks [H, W, N] bool, and with a
        keypoint head (Config.NUM_KEYPOINTS > 0) keypoints [N, K, (x, y, score)] float32
        pixels of the original image, and with Config.MASK_SCORING mask_scores [N] float32
        (scores x the MaskIoU head's predicted IoU of the mask; scores stay the class scores).
        A subclass that overrides unmold_detections gets it called per image, as matterport's
        detect() did; its (rois, class_ids, scores, masks[, keypoints]) make the dict.
        """
        images = list(images)
        if verbose:
            print(f"Processing {len(images)} images")
        if not images:
            return []
        molded_images, image_metas, windows = self.mold_inputs(images)
        return self._detect_and_unmold(molded_images, image_metas,
                                       [np.asarray(image).shape for image in images], windows)

    def _detect_and_unmold(self, molded_images, image_metas, original_shapes, windows):
        outputs = dict(zip(builder.inference_output_names(self.config),
                           self._predict(molded_images, image_metas)))
        keypoint_maps = outputs.get("mrcnn_keypoint")
        mask_scores = outputs.get("mrcnn_mask_scores")
        if type(self).unmold_detections is not MaskRCNN.unmold_detections:
            return inference.unmold_detections_with(
                self.unmold_detections, outputs["mrcnn_detection"], outputs["mrcnn_mask"],
                original_shapes, molded_images.shape[1:], windows, keypoint_maps)
        results = []
        for i, (shape, window) in enumerate(zip(original_shapes, windows)):
            results.append(inference.unmold_detections_dict(
                outputs["mrcnn_detection"][i], outputs["mrcnn_mask"][i], shape,
                molded_images[i].shape, window,
                None if keypoint_maps is None else keypoint_maps[i],
                None if mask_scores is None else mask_scores[i]))
        return results

    def detect_molded(self, molded_images, image_metas, verbose=0):
        """Detection on images already molded (e.g. from load_image_gt + mold_image); the
        window is the whole image. Same output as detect()."""
        if len(molded_images) == 0:
            return []
        molded_images = np.asarray(molded_images, dtype=np.float32)
        image_metas = np.asarray(image_metas, dtype=np.float32)
        if molded_images.ndim != 4 or image_metas.shape != (len(molded_images),
                                                            self.config.IMAGE_META_SIZE):
            raise ValueError(f"detect_molded: molded_images must be [batch, height, width, "
                             f"channels] and image_metas [batch, {self.config.IMAGE_META_SIZE}]"
                             f", got {molded_images.shape} and {image_metas.shape}")
        shapes = [image.shape for image in molded_images]
        windows = [[0, 0, shape[0], shape[1]] for shape in shapes]
        return self._detect_and_unmold(molded_images, image_metas, shapes, windows)

    # ------------------------------------------------------------------ introspection
    def find_trainable_layer(self, layer):
        """The layer itself, or the layer inside a TimeDistributed wrapper."""
        return getattr(layer, "layer", layer)

    def get_trainable_layers(self):
        """Layers that have weights."""
        return [self.find_trainable_layer(layer) for layer in self.keras_model.layers
                if layer.weights]

    def ancestor(self, tensor, name, checked=None):
        raise NotImplementedError("ancestor() walked TF1 graph ops; use run_graph with layer "
                                  "names instead (e.g. outputs=[('rois', 'ROI')])")

    def run_graph(self, images, outputs, image_metas=None):
        """Values of named intermediate tensors for some images (eager Keras 3).

        outputs: list of (name, layer_name) pairs, or (name, KerasTensor) pairs; layer names
        are e.g. "ROI", "res4w_out", "rpn_bbox", "roi_align_mask", "mrcnn_detection".
        Returns an ordered dict name -> NumPy array (batch first).
        """
        from collections import OrderedDict

        tensors = []
        for _, ref in outputs:
            if isinstance(ref, str):
                ref = self.keras_model.get_layer(ref).output
            tensors.append(ref)
        probe = keras.Model(self.keras_model.inputs, tensors)
        if image_metas is None:
            molded, image_metas, _ = self.mold_inputs(images)
        else:
            molded = np.asarray(images, dtype=np.float32)
        inputs = [molded, image_metas]
        if self.mode == "inference":
            anchors = self.get_anchors(molded.shape[1:])
            inputs.append(np.broadcast_to(anchors, (molded.shape[0],) + anchors.shape))
        else:
            raise ValueError("run_graph needs an inference-mode model")
        values = probe(inputs, training=False)
        if not isinstance(values, (list, tuple)):
            values = [values]
        return OrderedDict((name, np.asarray(v)) for (name, _), v in zip(outputs, values))
