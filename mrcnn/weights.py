"""Weight files: the Keras 2 h5 layout of matterport's files, read and written by layer name.

Layout (what Keras 2 save_weights wrote, e.g. mask_rcnn_coco.h5):
    root attrs: layer_names (every layer, in order), backend, keras_version.
    one group per layer, attr weight_names (empty for weightless layers); each weight is a dataset
    at group[weight_name], e.g. f["conv1"]["conv1"]["kernel:0"]. The nested rpn_model group holds
    its three conv layers' weights ("rpn_conv_shared/kernel:0", ...). TimeDistributed weights are
    named after the wrapper ("mrcnn_class_conv1/kernel:0"). A full-model save keeps all of it
    under "model_weights".
Within a layer, weights are matched by order (Keras 2's rule) and checked by name and shape.
"""

import logging
import os
import tempfile

import numpy as np

__all__ = ["load_weights", "save_weights_h5", "WeightsMismatchError", "LoadReport",
           "layers_with_weights", "keras_applications_name", "find_imagenet_weights",
           "file_layer_names", "load_imagenet_weights", "find_weights_file",
           "IMAGENET_FILES", "REPO_ROOT", "SHARED_DATA_DIR"]

# ResNet ImageNet "notop" files: the classic Keras 2 ResNet50 file (matterport's layer names) and
# keras.applications' files (conv2_block1_1_conv names) share these file names.
IMAGENET_FILES = {
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet101": "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
}

# The repository root, and the folder beside it where real external data and weights live.
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHARED_DATA_DIR = os.path.join(REPO_ROOT, "..", "shared", "data")

logger = logging.getLogger(__name__)


class WeightsMismatchError(ValueError):
    """Weights in a file do not fit the model; the message lists every offending layer."""


class LoadReport(dict):
    """What load_weights did: lists of layer names under loaded, excluded, mismatched,
    missing_in_file (model layers the file has no weights for) and unused_in_file."""

    def summary(self):
        return ", ".join(f"{len(self[k])} {k.replace('_', ' ')}" for k in
                         ("loaded", "excluded", "mismatched", "missing_in_file", "unused_in_file"))


def _decode(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _layers_root(f, filepath):
    """The h5 group holding the layer groups: the file itself (weights-only save) or its
    model_weights group (full-model save)."""
    root = f
    if "layer_names" not in root.attrs and "model_weights" in root:
        root = root["model_weights"]
    if "layer_names" not in root.attrs:
        raise ValueError(f"{filepath} is not in the Keras 2 h5 layout (no 'layer_names'); "
                         "for a Keras 3 '.weights.h5' file use keras_model.load_weights")
    return root


def file_layer_names(filepath):
    """Layer names of a Keras 2 layout h5 file (weights-only or full-model save)."""
    import h5py

    with h5py.File(filepath, "r") as f:
        return _decode(_layers_root(f, filepath).attrs["layer_names"])


def load_imagenet_weights(model, filepath, verbose=1):
    """Loads an ImageNet ResNet notop file into the backbone layers of a Keras model, by name:
    the classic Keras file (res2a_branch2a names) as it is, keras.applications' files
    (conv2_block1_1_conv names) through keras_applications_name. Returns a LoadReport."""
    rename = keras_applications_name if "conv1_conv" in file_layer_names(filepath) else None
    return load_weights(model, filepath, by_name=True, rename=rename, verbose=verbose)


def _short_name(weight_name):
    """'mrcnn_class_conv1/kernel:0' -> 'kernel'."""
    return weight_name.split("/")[-1].split(":")[0]


def layers_with_weights(model):
    """Top-level layers of a Keras model that own weights, in order."""
    return [layer for layer in model.layers if layer.weights]


def _h5_names(layer):
    """Keras 2 weight names of a top-level layer ('<owner>/<short>:0')."""
    names = []
    sublayers = getattr(layer, "layers", None)
    if sublayers is not None and not hasattr(layer, "layer"):  # a nested Model (rpn_model)
        for sub in sublayers:
            names += [f"{sub.name}/{w.name}:0" for w in sub.weights]
    else:
        names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
    return names


def _fsync_directory(directory):
    """Makes a rename in `directory` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error(e, filepath):
    """An OSError (same errno) saying which file could not be written and why."""
    reason = e.strerror or str(e)
    msg = f"could not write weights file {filepath}: {reason}; an existing file there is " \
        "left as it was"
    return OSError(e.errno, msg) if e.errno is not None else OSError(msg)


def save_weights_h5(model, filepath, extra=None):
    """Writes the model's weights in the Keras 2 layout, atomically: a temporary file in the
    same directory is written, flushed to disk (fsync) and renamed over filepath, so a crash or
    a full disk never leaves a truncated file and never harms an existing file at filepath.

    extra: optional function (h5py.File) -> None that adds more to the file before it is
    closed (training.py stores the resumable training state this way).
    Raises OSError naming filepath and the operating system's error (e.g. ENOSPC) when the
    file cannot be written; the temporary file is removed.
    """
    import h5py

    filepath = str(filepath)
    directory = os.path.dirname(os.path.abspath(filepath))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".h5.tmp", dir=directory)
        os.close(fd)
    except OSError as e:
        raise _write_error(e, filepath) from e
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = b"2.2.5"  # the layout's version, read by Keras 2 tools
            f.attrs["mrcnn_layout"] = b"keras2-by-name"
            for layer in model.layers:
                g = f.create_group(layer.name)
                names = _h5_names(layer) if layer.weights else []
                g.attrs["weight_names"] = [n.encode("utf8") for n in names]
                for name, w in zip(names, layer.weights):
                    g.create_dataset(name, data=np.asarray(w.numpy()))
            if extra is not None:
                extra(f)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, filepath)
    except OSError as e:
        raise _write_error(e, filepath) from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_directory(directory)


def keras_applications_name(name):
    """keras.applications ResNet layer name -> matterport's (None if it has no counterpart).

    conv1_conv -> conv1, conv1_bn -> bn_conv1, conv{s}_block{b}_{k}_conv -> res{s}{x}_branch{y}
    and _bn -> bn{s}{x}_branch{y}, where x is the b-th letter and y is 1, 2a, 2b, 2c for k =
    0, 1, 2, 3.
    """
    import re

    if name == "conv1_conv":
        return "conv1"
    if name == "conv1_bn":
        return "bn_conv1"
    m = re.fullmatch(r"conv(\d)_block(\d+)_(\d)_(conv|bn)", name)
    if not m:
        return None
    stage, block, k, kind = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
    branch = {0: "1", 1: "2a", 2: "2b", 3: "2c"}[k]
    prefix = "res" if kind == "conv" else "bn"
    return f"{prefix}{stage}{chr(96 + block)}_branch{branch}"


def find_weights_file(filename, directories):
    """Path of the first directories/filename that exists, else FileNotFoundError naming the
    file and every directory searched. mrcnn never downloads weights."""
    for directory in directories:
        path = os.path.join(directory, filename)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"weights file {filename} not found; mrcnn does not download weights. Put the file "
        f"in one of: {', '.join(os.path.abspath(d) for d in directories)}")


def find_imagenet_weights(backbone, search=None):
    """Path of a local ImageNet notop file for the backbone: in `search`, the repository
    root, SHARED_DATA_DIR or ~/.keras/models; else FileNotFoundError saying which file to put
    where. mrcnn never downloads it."""
    filename = IMAGENET_FILES.get(backbone)
    if filename is None:
        raise ValueError(f"no ImageNet weights known for backbone {backbone!r}")
    return find_weights_file(filename, list(search or []) + [
        REPO_ROOT, SHARED_DATA_DIR, os.path.join(os.path.expanduser("~"), ".keras", "models")])


def load_weights(model, filepath, by_name=False, exclude=None, skip_mismatch=False,
                 verbose=1, rename=None):
    """Loads a Keras 2 layout h5 file (weights-only or full-model save) into a Keras model.

    by_name: match layers by name (layers missing on either side are skipped); otherwise the
        file's weighted layers are assigned to the model's in order and their counts must match.
    exclude: layer names to leave untouched (implies by_name).
    skip_mismatch: layers whose weight count or shapes differ are skipped with a warning each;
        otherwise WeightsMismatchError lists every such layer with both shapes.
    rename: optional function file layer name -> model layer name (None: not loaded), e.g.
        keras_applications_name; implies by_name.
    Returns a LoadReport.
    """
    import h5py

    if not os.path.isfile(filepath):
        raise FileNotFoundError(f"weights file not found: {filepath}")
    exclude = set(exclude or [])
    by_name = by_name or bool(exclude) or rename is not None
    report = LoadReport(loaded=[], excluded=[], mismatched=[], missing_in_file=[],
                        unused_in_file=[])
    try:
        f = h5py.File(filepath, "r")
    except OSError as e:
        raise ValueError(f"{filepath} is not a readable HDF5 weights file: {e}") from e
    with f:
        root = _layers_root(f, filepath)
        file_layers = []
        for name in _decode(root.attrs["layer_names"]):
            names = _decode(root[name].attrs.get("weight_names", []))
            if names:
                file_layers.append((name, names))
        model_layers = layers_with_weights(model)
        if by_name:
            index = {layer.name: layer for layer in model_layers}
            pairs = []
            in_file = set()
            for name, names in file_layers:
                target = rename(name) if rename is not None else name
                in_file.add(target)
                if target in exclude:
                    report["excluded"].append(target)
                elif target in index:
                    pairs.append((index[target], name, names))
                else:
                    report["unused_in_file"].append(name)
            report["missing_in_file"] = [layer.name for layer in model_layers
                                         if layer.name not in in_file and layer.name not in exclude]
        else:
            if len(file_layers) != len(model_layers):
                raise WeightsMismatchError(
                    f"{filepath} has {len(file_layers)} layers with weights, the model has "
                    f"{len(model_layers)}; use by_name=True to load the common layers")
            pairs = [(layer, name, names) for layer, (name, names) in zip(model_layers,
                                                                          file_layers)]
        problems, assignments = [], []
        for layer, name, names in pairs:
            values = [np.asarray(root[name][wn]) for wn in names]
            symbolic = layer.weights
            model_shapes = [tuple(w.shape) for w in symbolic]
            file_shapes = [v.shape for v in values]
            if model_shapes != file_shapes or \
                    [_short_name(n) for n in names] != [w.name for w in symbolic]:
                problems.append(f"  {layer.name}: model {model_shapes} vs file {name} "
                                f"{file_shapes}")
                report["mismatched"].append(layer.name)
                continue
            assignments.append((layer, values))
        if problems and not skip_mismatch:
            raise WeightsMismatchError(
                f"weights in {filepath} do not fit {len(problems)} layer(s) (pass "
                "skip_mismatch=True to skip them, or exclude=[...]):\n" + "\n".join(problems))
        for line in problems:
            logger.warning("skipping layer with mismatched weights:%s", line)
        for layer, values in assignments:
            for w, v in zip(layer.weights, values):
                w.assign(v)
            report["loaded"].append(layer.name)
    if verbose:
        print(f"Loaded weights from {filepath}: {report.summary()}")
    return report
