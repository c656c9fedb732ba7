"""Training callbacks and the state they save: the position in the run, the optimizer's and
random generators' variables (capture_state / restore_state), the callback that writes
checkpoints atomically (CheckpointCallback) and the guard that skips and then stops on
non-finite steps (NonFiniteGuard, NonFiniteLossError). File names and the h5 layout are in
checkpoints.py; the train step that counts non-finite steps is training.TrainingModel.
"""

import logging
import os

import keras
import numpy as np

from mrcnn.checkpoints import TrainingState, prune_checkpoints, write_checkpoint

__all__ = ["CheckpointCallback", "NonFiniteGuard", "NonFiniteLossError", "capture_state",
           "restore_state", "resume_position"]

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """Training stopped after Config.MAX_NONFINITE_STEPS consecutive steps whose loss or
    gradients were not finite. The message names the step, its losses and its images."""


def _rng_variables(keras_model):
    """The model's variables that are not weights: random-generator states (SeedGenerator),
    which advance every step and decide e.g. the ROI sampling of DetectionTargetLayer."""
    weights = {id(w) for w in keras_model.weights}
    return [v for v in keras_model.variables if id(v) not in weights]


def capture_state(trainer, epoch, step, seed, steps_per_epoch, weights_file="",
                  nonfinite_steps=0):
    """A checkpoints.TrainingState of a TrainingModel at (epoch, step)."""
    return TrainingState(
        epoch=int(epoch), step=int(step), seed=int(seed), steps_per_epoch=int(steps_per_epoch),
        batch_size=trainer.batch_size, weights_file=weights_file,
        nonfinite_steps=int(nonfinite_steps),
        trainable=[v.path for v in trainer.net.trainable_variables],
        optimizer=[(v.path, np.asarray(v.numpy())) for v in trainer.optimizer.variables],
        rng=[(v.path, np.asarray(v.numpy())) for v in _rng_variables(trainer.net)])


def _without_owner(path):
    """'sgd_1/conv1_kernel_momentum' -> 'conv1_kernel_momentum' (optimizer names get a
    per-process counter suffix)."""
    return path.split("/", 1)[-1]


def resume_position(state, seed, steps_per_epoch, batch_size):
    """(data seed, first step in the epoch) to resume a checkpoint's TrainingState (None: a
    fresh run, (seed, 0)). seed None takes the checkpoint's; a different seed, or a different
    STEPS_PER_EPOCH or BATCH_SIZE, is allowed with a warning that the batches will differ."""
    if state is None:
        return seed, 0
    if seed is None:
        seed = state.seed
    elif seed != state.seed:
        logger.warning("seed=%s differs from the checkpoint's data seed %s: the batches after "
                       "the resume differ from the interrupted run's", seed, state.seed)
    if (state.steps_per_epoch, state.batch_size) != (steps_per_epoch, batch_size):
        logger.warning("The checkpoint was written with STEPS_PER_EPOCH=%d, BATCH_SIZE=%d; now "
                       "%d, %d: the data position differs", state.steps_per_epoch,
                       state.batch_size, steps_per_epoch, batch_size)
    return seed, state.step if state.step < steps_per_epoch else 0


def restore_state(trainer, state):
    """Puts a TrainingState's optimizer variables (except the learning rate: train()'s
    argument and learning-rate callbacks set it) and random-generator states into a compiled
    TrainingModel. The optimizer state is restored only when the trainable variables and
    optimizer variables match the saved ones (same layers trained); otherwise a warning says
    the optimizer starts afresh. Returns True when the optimizer state was restored."""
    rng = _rng_variables(trainer.net)
    # Seed generators are named by a per-process counter: match them by order and shape.
    if [np.shape(a) for _, a in state.rng] == [tuple(v.shape) for v in rng]:
        for v, (_, value) in zip(rng, state.rng):
            v.assign(value)
    else:
        logger.warning("Random-generator states in the checkpoint do not match the model's; "
                       "ROI sampling will differ from the interrupted run")
    variables = trainer.optimizer.variables
    trainable = [v.path for v in trainer.net.trainable_variables]
    saved = [(_without_owner(p), np.shape(a)) for p, a in state.optimizer]
    now = [(_without_owner(v.path), tuple(v.shape)) for v in variables]
    if trainable != state.trainable or saved != now:
        logger.warning(
            "Optimizer state not restored: the checkpoint's optimizer was built for %d "
            "trainable variables (%d optimizer variables), this run trains %d (%d); "
            "momentum and the iteration count start afresh", len(state.trainable),
            len(saved), len(trainable), len(now))
        return False
    for v, (path, value) in zip(variables, state.optimizer):
        if _without_owner(path) != "learning_rate":
            v.assign(value)
    return True


# ---------------------------------------------------------------------- callbacks
class _Position(keras.callbacks.Callback):
    """Tracks the training position: self.epoch (Keras' 0-based index = epochs completed) and
    self.step (steps done in it). A resumed run's first epoch starts at start = (epoch, step)."""

    def __init__(self, steps_per_epoch, start=(0, 0)):
        super().__init__()
        self.steps_per_epoch = int(steps_per_epoch)
        self.start = tuple(int(v) for v in start)
        self.epoch, self.step = self.start
        self._first = self.step

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.step = self._first = self.start[1] if epoch == self.start[0] else 0

    def on_train_batch_end(self, batch, logs=None):
        self.step = self._first + int(batch) + 1

    @property
    def global_step(self):
        """Training steps done since the run's first epoch began (1-based number of the last)."""
        return self.epoch * self.steps_per_epoch + self.step

    def where(self):
        return (f"step {self.global_step} (epoch {self.epoch + 1}, step {self.step} of "
                f"{self.steps_per_epoch})")

    def last_step_finite(self, trainer):
        return trainer is None or float(trainer.step_finite.numpy()) > 0.5


class CheckpointCallback(_Position):
    """Writes all of training's checkpoints (the one place to add e.g. a multi-worker "chief
    only" check: _write).

    - after every epoch: path_template.format(epoch=epoch + 1), the matterport-named weights
      file, then the resumable state at (epoch + 1, step 0) in resume_path;
    - every `every_steps` steps inside an epoch: the resumable state at (epoch, step).
    Nothing is written while the last step was skipped as non-finite (the previous checkpoint
    stays the latest). keep: after each epoch file, delete those older than the newest `keep`.
    Every write is atomic (checkpoints.write_checkpoint); a failure (disk full, unwritable
    directory) raises OSError naming the file and leaves the previous file intact.

    keras_model: the model whose weights are saved. trainer: its TrainingModel (optimizer
    state, finiteness of the last step), or None to write weights only. seed: the training
    DataGenerator's seed, stored with the position.
    """

    def __init__(self, keras_model, path_template, trainer=None, resume_path=None,
                 every_steps=None, steps_per_epoch=1, seed=0, keep=None, name=None,
                 start=(0, 0), nonfinite_counter=None):
        super().__init__(steps_per_epoch, start)
        self.keras_model = keras_model
        self.path_template = path_template
        self.trainer = trainer
        self.resume_path = resume_path if trainer is not None else None
        self.every_steps = every_steps
        self.seed = seed
        self.keep = keep
        self.name = name
        self.nonfinite_counter = nonfinite_counter
        self.last_saved = None

    def _write(self, path, state=None):
        write_checkpoint(self.keras_model, path, state)
        self.last_saved = path

    def _state(self, epoch, step, weights_file=""):
        skipped = self.nonfinite_counter.total if self.nonfinite_counter is not None else 0
        return capture_state(self.trainer, epoch, step, self.seed, self.steps_per_epoch,
                             weights_file=weights_file, nonfinite_steps=skipped)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if not self.every_steps or not self.resume_path or self.step % self.every_steps or \
                self.step >= self.steps_per_epoch:
            return
        if not self.last_step_finite(self.trainer):
            logger.warning("No checkpoint at %s: its step was not finite", self.where())
            return
        self._write(self.resume_path, self._state(self.epoch, self.step))

    def on_epoch_end(self, epoch, logs=None):
        if not self.last_step_finite(self.trainer):
            logger.warning("No checkpoint after epoch %d: its last step was not finite; %s "
                           "stays the latest", epoch + 1, self.last_saved or "the previous one")
            return
        path = self.path_template.format(epoch=epoch + 1)
        self._write(path)
        if self.resume_path:
            self._write(self.resume_path, self._state(epoch + 1, 0, os.path.basename(path)))
        if self.keep and self.name:
            prune_checkpoints(os.path.dirname(path), self.name, self.keep, epoch + 1)


class NonFiniteGuard(_Position):
    """Counts the steps TrainingModel skipped because their loss or gradients were not finite,
    logs a warning for each (step, losses, image ids), and raises NonFiniteLossError after
    max_steps consecutive ones.

    describe: optional function image_id -> text (DataGenerator.describe_image).
    checkpoints: optional CheckpointCallback, to name the last good checkpoint in the error.
    """

    def __init__(self, trainer, max_steps, steps_per_epoch, start=(0, 0), describe=None,
                 checkpoints=None):
        super().__init__(steps_per_epoch, start)
        self.trainer = trainer
        self.max_steps = int(max_steps)
        self.describe = describe
        self.checkpoints = checkpoints
        self.consecutive = 0
        self.total = 0

    def step_report(self):
        """The last step's losses and images, as text."""
        values = np.asarray(self.trainer.step_losses.numpy())
        losses = ", ".join(f"{k}={v:.6g}"
                           for k, v in zip(("loss",) + self.trainer.loss_names, values))
        ids = [int(i) for i in np.asarray(self.trainer.step_image_ids.numpy()) if i >= 0]
        images = "; ".join(self.describe(i) if self.describe else f"image_id {i}" for i in ids)
        return f"losses: {losses}; images of the batch: {images}"

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if self.last_step_finite(self.trainer):
            self.consecutive = 0
            return
        self.consecutive += 1
        self.total += 1
        report = self.step_report()
        if self.consecutive >= self.max_steps:
            last = self.checkpoints.last_saved if self.checkpoints is not None else None
            raise NonFiniteLossError(
                f"Training stopped at {self.where()}: {self.consecutive} consecutive steps with "
                f"a non-finite loss or gradient (MAX_NONFINITE_STEPS = {self.max_steps}); "
                "none of them was applied. Last one: " + report + ". The newest checkpoint is "
                + (last if last else "the last one written before this run (none this run)"))
        logger.warning("Skipped %s: non-finite loss or gradient, update not applied (%d in a "
                       "row); %s", self.where(), self.consecutive, report)
