"""Checkpoint files of training runs: names, the resumable training state, validity checks, and
the newest good checkpoint.

A run directory (matterport's scheme, plus one file):

    <model_dir>/<name><YYYYMMDDTHHMM>/mask_rcnn_<name>_<EEEE>.h5   weights after epoch EEEE
    <model_dir>/<name><YYYYMMDDTHHMM>/resume_<name>.h5             the resumable state

<name> is config.NAME lowercased, EEEE the 1-based number of the epoch that produced the file.
The per-epoch files are weights only, in the Keras 2 layout that matterport's tools read.
resume_<name>.h5 is the same layout (so load_weights reads its weights) plus a group
"mrcnn_training_state" holding the position (epoch, step in the epoch, data seed), the
optimizer's variables (SGD momentum, iteration count, loss scale) and the random-generator
states of the model. It is rewritten atomically at every epoch end and every
CHECKPOINT_EVERY_STEPS steps; it is not named mask_rcnn_* so matterport's find_last never
mistakes it for an epoch file.
"""

import dataclasses
import datetime
import logging
import os
import re

import numpy as np

from mrcnn.weights import save_weights_h5

__all__ = ["CHECKPOINT_RE", "CHECKPOINT_FILE_RE", "STATE_GROUP", "TrainingState",
           "log_dir_for", "parse_checkpoint_path", "resume_file", "write_checkpoint",
           "read_training_state", "checkpoint_problem", "find_last_checkpoint",
           "state_for_weights", "prune_checkpoints"]

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^(?P<name>[\w-]+?)(?P<stamp>\d{8}T\d{4})$")
CHECKPOINT_FILE_RE = re.compile(r"^mask_rcnn_(?P<name>[\w-]+)_(?P<epoch>\d{4,})\.h5$")
RESUME_FILE_RE = re.compile(r"^resume_(?P<name>[\w-]+)\.h5$")
STATE_GROUP = "mrcnn_training_state"
STATE_VERSION = 1


@dataclasses.dataclass
class TrainingState:
    """Where a training run stands, and what it needs to continue exactly.

    epoch: epochs completed (also Keras' 0-based index of the epoch in progress).
    step: training steps done in that epoch, 0 <= step < steps_per_epoch; the next batch is
        the DataGenerator's global batch epoch * steps_per_epoch + step.
    seed: the training DataGenerator's seed. steps_per_epoch, batch_size: the run's values.
    trainable: paths of the trainable variables the optimizer was built for.
    optimizer: [(variable path, array)] of optimizer.variables, in order.
    rng: [(variable path, array)] of the model's non-weight variables (random seed states).
    weights_file: basename of the per-epoch file written together with this state ("" for
        mid-epoch states).
    nonfinite_steps: steps skipped so far in the run because their loss was not finite.
    """

    epoch: int
    step: int
    seed: int
    steps_per_epoch: int
    batch_size: int
    trainable: list = dataclasses.field(default_factory=list)
    optimizer: list = dataclasses.field(default_factory=list)
    rng: list = dataclasses.field(default_factory=list)
    weights_file: str = ""
    nonfinite_steps: int = 0

    SCALARS = ("epoch", "step", "seed", "steps_per_epoch", "batch_size", "nonfinite_steps")

    def write(self, f):
        """Writes the state into the group STATE_GROUP of an open h5py.File."""
        import h5py

        g = f.create_group(STATE_GROUP)
        g.attrs["version"] = STATE_VERSION
        for key in self.SCALARS:
            g.attrs[key] = int(getattr(self, key))
        g.attrs["weights_file"] = self.weights_file
        # A dataset, not an attribute: HDF5 attributes are limited to 64 KiB.
        g.create_dataset("trainable", data=[p.encode("utf8") for p in self.trainable],
                         dtype=h5py.string_dtype())
        for kind in ("optimizer", "rng"):
            sub = g.create_group(kind)
            for i, (path, value) in enumerate(getattr(self, kind)):
                d = sub.create_dataset(f"{i:06d}", data=np.asarray(value))
                d.attrs["path"] = path

    @classmethod
    def read(cls, f, arrays=True):
        """The state in an open h5py.File, or None when the file has none. arrays=False
        reads only the position and scalars (cheap: no optimizer arrays)."""
        if STATE_GROUP not in f:
            return None
        g = f[STATE_GROUP]
        if int(g.attrs.get("version", -1)) != STATE_VERSION:
            raise ValueError(f"training state version {g.attrs.get('version')} is not "
                             f"{STATE_VERSION}")

        def text(v):
            return v.decode("utf8") if isinstance(v, bytes) else str(v)

        values = {key: int(g.attrs[key]) for key in cls.SCALARS}
        values["weights_file"] = text(g.attrs["weights_file"])
        if not arrays:
            return cls(**values)
        lists = {kind: [(text(g[kind][k].attrs["path"]), np.asarray(g[kind][k]))
                        for k in sorted(g[kind])] for kind in ("optimizer", "rng")}
        return cls(trainable=[text(p) for p in g["trainable"][()]], **values, **lists)

    @property
    def position(self):
        return (self.epoch, self.step)


def log_dir_for(model_dir, name, now=None):
    """<model_dir>/<name><YYYYMMDDTHHMM>."""
    now = now or datetime.datetime.now()
    return os.path.join(model_dir, f"{name.lower()}{now:%Y%m%dT%H%M}")


def resume_file(log_dir, name):
    """<log_dir>/resume_<name>.h5: the resumable state of a run."""
    return os.path.join(log_dir, f"resume_{name.lower()}.h5")


def _run_dir_name(directory):
    m = CHECKPOINT_RE.match(os.path.basename(directory))
    return m.group("name") if m else None


def parse_checkpoint_path(path, name=None):
    """(log_dir, epoch) of a per-epoch checkpoint path following the naming scheme, else None.

    Accepts matterport's <dir>/<name><stamp>/mask_rcnn_<name>_<EEEE>.h5 names. With `name`,
    the directory and file must belong to that config name. (For resume_<name>.h5 files see
    read_training_state: their epoch is inside the file.)
    """
    path = os.path.abspath(str(path))
    directory, filename = os.path.split(path)
    m_file = CHECKPOINT_FILE_RE.match(filename)
    run_name = _run_dir_name(directory)
    if not m_file or run_name is None or m_file.group("name") != run_name:
        return None
    if name is not None and run_name != name.lower():
        return None
    return directory, int(m_file.group("epoch"))


def is_resume_file(path, name=None):
    """True when path is <name><stamp>/resume_<name>.h5 (name-wise; the file is not opened)."""
    path = os.path.abspath(str(path))
    directory, filename = os.path.split(path)
    m = RESUME_FILE_RE.match(filename)
    run_name = _run_dir_name(directory)
    return bool(m) and run_name == m.group("name") and \
        (name is None or run_name == name.lower())


def write_checkpoint(keras_model, path, state=None):
    """Writes keras_model's weights (Keras 2 layout) and, when given, a TrainingState to path,
    atomically (weights.save_weights_h5: temp file, fsync, rename). The one function through
    which training writes checkpoints. Raises OSError naming path when the disk is full or the
    directory unwritable; the file previously at path is then intact."""
    save_weights_h5(keras_model, path, extra=None if state is None else state.write)


def read_training_state(path, arrays=True):
    """The TrainingState stored in a checkpoint file, or None if it holds none. arrays=False:
    position and scalars only (see TrainingState.read)."""
    import h5py

    with h5py.File(path, "r") as f:
        return TrainingState.read(f, arrays=arrays)


def checkpoint_problem(path, need_state=False):
    """None when path looks like a usable checkpoint, else the reason it is not. Cheap: opens
    the file with h5py and checks its layer list (and training state), loads no weights."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            root = f
            if "layer_names" not in root.attrs and "model_weights" in root:
                root = root["model_weights"]
            names = root.attrs.get("layer_names")
            if names is None or len(names) == 0:
                return "no layer names (not a Keras 2 layout weights file)"
            missing = [n for n in names
                       if (n.decode("utf8") if isinstance(n, bytes) else n) not in root]
            if missing:
                return f"{len(missing)} listed layer(s) missing, e.g. {missing[0]!r}"
            if need_state and TrainingState.read(f, arrays=False) is None:
                return f"no {STATE_GROUP} group"
    except Exception as e:  # h5py raises OSError, KeyError, ValueError... on damaged files
        return f"unreadable ({type(e).__name__}: {e})"
    return None


def _candidates(run_dir, name):
    """[(epoch, step, is_epoch_file, path)] of a run directory, newest first; at equal
    positions the matterport-named per-epoch file comes first."""
    found = []
    for f in os.listdir(run_dir):
        m = CHECKPOINT_FILE_RE.match(f)
        if m and m.group("name") == name:
            found.append((int(m.group("epoch")), 0, 1, os.path.join(run_dir, f)))
    resume = resume_file(run_dir, name)
    if os.path.isfile(resume):
        try:
            state = read_training_state(resume, arrays=False)
        except Exception:  # damaged: checked first, so that the warning says why
            state = None
        position = state.position if state is not None else (float("inf"), 0)
        found.append(position + (0, resume))
    return sorted(found, reverse=True)


def find_last_checkpoint(model_dir, name):
    """Newest good checkpoint of config name `name` in model_dir.

    Run directories <name><stamp> (exact name match) are searched newest first. In a run, the
    candidates are its per-epoch files and its resume_<name>.h5, ordered by training position
    (epoch, step); at the same position the per-epoch file wins (its training state is found
    beside it by state_for_weights). A candidate that h5py cannot open or that has no layer
    list (a truncated or damaged file) is skipped with a warning naming it. Raises
    FileNotFoundError saying what was searched when there is none."""
    name = name.lower()
    runs = []
    if os.path.isdir(model_dir):
        for d in os.listdir(model_dir):
            m = CHECKPOINT_RE.match(d)
            if m and m.group("name") == name and os.path.isdir(os.path.join(model_dir, d)):
                runs.append((m.group("stamp"), d))
    for _, d in sorted(runs, reverse=True):
        for _, _, is_epoch_file, path in _candidates(os.path.join(model_dir, d), name):
            problem = checkpoint_problem(path, need_state=not is_epoch_file)
            if problem is None:
                return path
            logger.warning("Skipping checkpoint %s: %s; falling back to the previous one",
                           path, problem)
    raise FileNotFoundError(
        f"Could not find a readable checkpoint of '{name}' in {model_dir} (looked for "
        f"{name}YYYYMMDDTHHMM/mask_rcnn_{name}_EEEE.h5 and resume_{name}.h5)")


def state_for_weights(path, name):
    """The TrainingState that continues from weights file `path`: its own (a resume file), or
    that of the run's resume file when it was written together with this per-epoch file (same
    epoch, step 0). None otherwise (the run then restarts the optimizer, as matterport)."""
    if is_resume_file(path, name):
        return read_training_state(path)
    parsed = parse_checkpoint_path(path, name)
    if not parsed:
        return None
    log_dir, epoch = parsed
    resume = resume_file(log_dir, name)
    if not os.path.isfile(resume) or checkpoint_problem(resume, need_state=True):
        return None
    state = read_training_state(resume, arrays=False)
    if state.position == (epoch, 0) and state.weights_file == os.path.basename(path):
        return read_training_state(resume)
    return None


def prune_checkpoints(log_dir, name, keep, epoch):
    """Deletes the per-epoch files of epochs <= epoch - keep in log_dir (keeps the newest
    `keep` up to `epoch`; files of later epochs, from an earlier run in the same directory, are
    left alone). Returns the deleted paths."""
    name = name.lower()
    deleted = []
    for f in sorted(os.listdir(log_dir)):
        m = CHECKPOINT_FILE_RE.match(f)
        if m and m.group("name") == name and int(m.group("epoch")) <= epoch - keep:
            path = os.path.join(log_dir, f)
            try:
                os.remove(path)
                deleted.append(path)
            except OSError as e:
                logger.warning("Could not delete old checkpoint %s: %s", path, e)
    return deleted
