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

from mrcnn.download import fsync_directory

__all__ = ["load_weights", "save_weights_h5", "WeightsMismatchError", "LoadReport",
           "layers_with_weights", "keras_applications_name", "find_imagenet_weights",
           "file_layer_names", "load_imagenet_weights", "find_weights_file",
           "IMAGENET_FILES", "IMAGENET_URLS", "KNOWN_MD5", "REPO_ROOT", "SHARED_DATA_DIR",
           "check_weights_file", "imagenet_search_dirs"]

# ResNet ImageNet "notop" files: the classic Keras 2 ResNet50 file (matterport's layer names) and
# keras.applications' files (conv2_block1_1_conv names) share these file names.
IMAGENET_FILES = {
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet101": "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
# Where find_imagenet_weights downloads them from: resnet50 from the Keras 2 release matterport
# used, resnet101 from keras.applications (no Keras 2 release had one).
_KERAS2_RELEASE = "https://github.com/fchollet/deep-learning-models/releases/download/v0.2/"
_KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
IMAGENET_URLS = {
    "resnet50": _KERAS2_RELEASE + IMAGENET_FILES["resnet50"],
    "resnet101": _KERAS_APPLICATIONS + IMAGENET_FILES["resnet101"],
}
# md5 of the files at those URLs (matterport's and keras.applications' WEIGHTS_HASHES).
KNOWN_MD5 = {
    IMAGENET_URLS["resnet50"]: "a268eb855778b3df3c7506639542a6af",
    _KERAS_APPLICATIONS + IMAGENET_FILES["resnet50"]: "4d473c1dd8becc155b73f8504c6f6626",
    IMAGENET_URLS["resnet101"]: "88cf7a10940856eca736dc7b7e228a21",
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


def file_layer_shapes(filepath, layer_name):
    """Shapes of one layer's weights in a Keras 2 layout h5 file; None when the file is not
    such a file or has no weights for that layer."""
    import h5py

    try:
        with h5py.File(filepath, "r") as f:
            root = _layers_root(f, filepath)
            if layer_name not in root:
                return None
            group = root[layer_name]
            names = _decode(group.attrs.get("weight_names", []))
            return [tuple(group[n].shape) for n in names] or None
    except (OSError, ValueError):
        return None


def file_num_classes(filepath):
    """NUM_CLASSES of the model that saved a Keras 2 layout h5 file (the width of its
    mrcnn_class_logits kernel), or None when the file has no such layer."""
    shapes = file_layer_shapes(filepath, "mrcnn_class_logits")
    return shapes[0][-1] if shapes else None


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
    fsync_directory(directory)


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


def check_weights_file(filepath, need_any=()):
    """Raises ValueError unless filepath is a readable Keras 2 layout h5 file with layer names
    (and, when need_any is given, at least one of those layer names). Used to check a
    download before it is kept."""
    try:
        names = file_layer_names(filepath)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{filepath} is not a readable HDF5 weights file with layer names: "
                         f"{e}") from e
    if not names:
        raise ValueError(f"{filepath} lists no layers")
    if need_any and not set(need_any) & set(names):
        raise ValueError(f"{filepath} has none of the layers {sorted(need_any)} "
                         f"(its first layers: {names[:5]})")
    return names


def find_weights_file(filename, directories):
    """Path of the first directories/filename that exists, else FileNotFoundError naming the
    file and every directory searched. A local lookup only: it never downloads (see
    find_imagenet_weights and utils.download_trained_weights for the downloading ones)."""
    for directory in directories:
        path = os.path.join(directory, filename)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"weights file {filename} not found in any of: "
        f"{', '.join(os.path.abspath(d) for d in directories)} (this local lookup does not "
        f"download; utils.download_trained_weights(path) fetches mask_rcnn_coco.h5 and "
        f"MaskRCNN.get_imagenet_weights() the ImageNet files)")


def imagenet_search_dirs(search=None, cache_dir=None):
    """Where find_imagenet_weights looks, in order: `search`, the repository root,
    SHARED_DATA_DIR and the download cache (cache_dir, else $MRCNN_CACHE_DIR, else
    ~/.keras/models)."""
    from mrcnn.download import get_cache_dir

    return list(search or []) + [REPO_ROOT, SHARED_DATA_DIR, get_cache_dir(cache_dir)]


def find_imagenet_weights(backbone, search=None, url=None, md5=None, cache_dir=None,
                          download=True, progress=True):
    """Path of the ImageNet notop file for the backbone ("resnet50" or "resnet101").

    Looks in imagenet_search_dirs(search, cache_dir) first and returns the first file found
    there as it is (a file put there by hand is trusted). Otherwise, when download is true,
    downloads it into the cache (mrcnn.download.download_file: progress bar, atomic write)
    from `url` (default IMAGENET_URLS[backbone]), checks its md5 (default: the known md5 of
    that URL, KNOWN_MD5; none for other URLs) and that it is an h5 file with ResNet layer
    names. Raises FileNotFoundError when download is false and the file is nowhere, and
    mrcnn.download.DownloadError (an OSError) naming the URL and the paths where a file
    fetched by hand is picked up when the download fails.
    """
    filename = IMAGENET_FILES.get(backbone) if isinstance(backbone, str) else None
    if filename is None:
        raise ValueError(f"no ImageNet weights known for backbone {backbone!r} (known: "
                         f"{', '.join(IMAGENET_FILES)})")
    directories = imagenet_search_dirs(search, cache_dir)
    try:
        return find_weights_file(filename, directories)
    except FileNotFoundError:
        if not download:
            raise
    from mrcnn.download import download_file

    url = url or IMAGENET_URLS[backbone]
    md5 = md5 or KNOWN_MD5.get(url)
    return download_file(
        url, os.path.join(directories[-1], filename), md5=md5, progress=progress,
        validate=lambda p: check_weights_file(p, need_any=("conv1", "conv1_conv")),
        manual_hint=f"It is also found in any of: {', '.join(directories[:-1])}.")


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
