"""Fetching files over HTTP(S): a cache, a progress bar, hash checks and atomic writes.

download_file(url, path) is the one place mrcnn touches the network. It

- returns at once, without any network access, when the file is already at its place and
  passes the checks it was given (hash, validate);
- otherwise streams the body into a temporary file in the destination's directory
  (".<name>.<random>.part"), showing bytes, percent and rate on stderr, checks the byte count
  against Content-Length, the md5/sha256 and the optional validate(tmp_path), then fsyncs and
  os.replace()s it onto the final name. A download that is killed, cut short or fails a check
  never leaves a file under the final name (a SIGKILL can leave a ".part" file, which is
  never read and may be deleted);
- raises DownloadError (a subclass of OSError) naming the URL and the exact local path where
  a file fetched by hand is picked up, and HashMismatchError (a DownloadError) naming the URL,
  the expected and the actual hash.

TORCHVISION_CHECKPOINTS lists the torchvision files mrcnn loads (URL, SHA-256 prefix, COCO
or ImageNet figures); download_torchvision_checkpoint(name) fetches one of them.

The cache directory is, in order: the cache_dir argument, the MRCNN_CACHE_DIR environment
variable, or Keras' own cache ~/.keras/models (where keras.applications and matterport put the
ImageNet files).
"""

import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["download_file", "get_cache_dir", "file_hash", "DownloadError", "HashMismatchError",
           "TORCHVISION_CHECKPOINTS", "download_torchvision_checkpoint",
           "CACHE_ENV"]

CACHE_ENV = "MRCNN_CACHE_DIR"
_CHUNK = 1 << 16


class DownloadError(OSError):
    """A file could not be downloaded (network error, HTTP error, short or invalid body).

    Attributes: url, path (where the file is expected; a file put there by hand is used)."""

    def __init__(self, message, url=None, path=None):
        super().__init__(message)
        self.url = url
        self.path = path

    def __str__(self):
        return self.args[0]


class HashMismatchError(DownloadError):
    """The downloaded bytes do not have the expected hash (the file was not kept)."""


def get_cache_dir(directory=None):
    """The download cache: `directory` if given, else $MRCNN_CACHE_DIR, else ~/.keras/models."""
    if directory:
        return os.path.abspath(os.path.expanduser(directory))
    env = os.environ.get(CACHE_ENV)
    if env:
        return os.path.abspath(os.path.expanduser(env))
    return os.path.join(os.path.expanduser("~"), ".keras", "models")


def file_hash(path, algorithm="md5"):
    """Hex digest of a file ("md5" or "sha256"), read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected_hash(md5, sha256):
    if md5 and sha256:
        raise ValueError("give md5 or sha256, not both")
    if md5:
        return "md5", md5.lower()
    if sha256:
        return "sha256", sha256.lower()
    return None, None


def _format_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


class _Progress:
    """One-line progress on stderr: name, bytes so far (of total), percent, rate."""

    def __init__(self, name, total, enabled, stream=None):
        self.name, self.total, self.enabled = name, total, enabled
        self.stream = stream or sys.stderr
        self.start = self.last = time.monotonic()
        self.done = 0

    def _line(self, now):
        rate = self.done / max(now - self.start, 1e-6)
        size = _format_bytes(self.done)
        if self.total:
            size += f" / {_format_bytes(self.total)} ({100.0 * self.done / self.total:5.1f}%)"
        return f"\rDownloading {self.name}: {size}, {_format_bytes(rate)}/s"

    def update(self, n):
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.2:
            self.last = now
            self.stream.write(self._line(now))
            self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write(self._line(time.monotonic()) + "\n")
            self.stream.flush()


def _is_good(path, algorithm, expected, validate):
    """Whether an existing file passes the hash (when known) and validate (when given)."""
    if algorithm and file_hash(path, algorithm) != expected:
        return False
    if validate is not None:
        try:
            validate(path)
        except Exception:  # noqa: BLE001 - any failure means "not a good file"
            return False
    return True


def fsync_directory(directory):
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


def download_file(url, path=None, *, cache_dir=None, md5=None, sha256=None, validate=None,
                  progress=True, timeout=60.0, manual_hint=None):
    """Downloads url to path (atomically), or returns path if a good copy is already there.

    url: http(s) or file URL.
    path: destination file. None: the URL's file name inside the cache directory
        (cache_dir argument, else $MRCNN_CACHE_DIR, else ~/.keras/models).
    md5 / sha256: expected hex digest (at most one). An existing file with another hash is
        downloaded again; a download with another hash is deleted and HashMismatchError raised.
    validate: optional function(path) that raises on a bad file (e.g. not HDF5); it runs on
        the temporary file before the rename, and on an existing file before it is reused.
    progress: show bytes, percent and rate on stderr.
    timeout: seconds for connecting and for each read.
    manual_hint: optional extra sentence for the offline error (e.g. other places searched).
    Returns the absolute path of the file.
    Raises DownloadError (an OSError) naming url and path; HashMismatchError on a bad hash.
    """
    if path is None:
        name = os.path.basename(urllib.parse.urlparse(url).path)
        if not name:
            raise ValueError(f"cannot tell a file name from {url!r}; pass path=")
        path = os.path.join(get_cache_dir(cache_dir), name)
    path = os.path.abspath(os.path.expanduser(path))
    algorithm, expected = _expected_hash(md5, sha256)
    if os.path.isfile(path):
        if _is_good(path, algorithm, expected, validate):
            return path
        print(f"{path} does not pass its checks ({algorithm or 'validation'}); downloading "
              f"it again from {url}", file=sys.stderr)

    directory, name = os.path.split(path)
    manual = (f"Without network access, download {url} by other means and save it as {path} "
              f"(it is used from there without any download).")
    if manual_hint:
        manual += " " + manual_hint
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create the directory {directory} for {url}: {e}",
                            url, path) from e
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            hasher = hashlib.new(algorithm) if algorithm else None
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "mrcnn"})
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    bar = _Progress(name, total, progress)
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        if hasher is not None:
                            hasher.update(chunk)
                        bar.update(len(chunk))
                    bar.close()
            except urllib.error.HTTPError as e:
                raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}. "
                                    f"{manual}", url, path) from e
            except urllib.error.URLError as e:
                raise DownloadError(f"could not download {url}: {e.reason}. {manual}",
                                    url, path) from e
            except (OSError, ValueError, http.client.HTTPException) as e:  # timeouts, resets
                raise DownloadError(f"could not download {url}: {type(e).__name__}: {e}. "
                                    f"{manual}", url, path) from e
            if total is not None and bar.done != total:
                raise DownloadError(
                    f"download of {url} was cut short: received {bar.done} of {total} bytes; "
                    f"nothing was written to {path}. Try again. {manual}", url, path)
            out.flush()
            os.fsync(out.fileno())
        if hasher is not None:
            actual = hasher.hexdigest()
            if actual != expected:
                raise HashMismatchError(
                    f"{url} gave a file whose {algorithm} is {actual}, expected {expected}; "
                    f"it was deleted and nothing was written to {path}. The download was "
                    f"corrupted or the server sent another file: try again or pass url= a "
                    f"mirror.", url, path)
        if validate is not None:
            try:
                validate(tmp)
            except Exception as e:
                raise DownloadError(f"{url} gave an invalid file ({e}); it was deleted and "
                                    f"nothing was written to {path}.", url, path) from e
        os.replace(tmp, path)
        fsync_directory(directory)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


# torchvision/models/detection/mask_rcnn.py, MaskRCNN_ResNet50_FPN_Weights.COCO_V1: the URL's
# hash part (bf2d0c1e) is the first 8 hex digits of the file's SHA-256, checked by torch.hub.
TORCHVISION_CHECKPOINTS = {
    "maskrcnn_resnet50_fpn_coco": {
        "url": "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
        "sha256_prefix": "bf2d0c1e",
        "box_map": 37.9,
        "mask_map": 34.6,
    },
    # MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1 (presets.TorchvisionMaskRCNNV2Config).
    "maskrcnn_resnet50_fpn_v2_coco": {
        "url": "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
        "sha256_prefix": "73cbd019",
        "box_map": 47.4,
        "mask_map": 41.8,
    },
    # keypoint_rcnn.py, KeypointRCNN_ResNet50_FPN_Weights.COCO_V1 (the default).
    "keypointrcnn_resnet50_fpn_coco": {
        "url": "https://download.pytorch.org/models/keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
        "sha256_prefix": "fc266e95",
        "box_map": 54.6,
        "kp_map": 65.0,
    },
    # ImageNet classifiers (resnet.py, ResNeXt50_32X4D_Weights / ResNeXt101_32X8D_Weights
    # IMAGENET1K_V1) for load_torchvision_backbone_weights.
    "resnext50_32x4d_imagenet": {
        "url": "https://download.pytorch.org/models/resnext50_32x4d-7cdf4587.pth",
        "sha256_prefix": "7cdf4587",
        "top1": 77.618,
    },
    "resnext101_32x8d_imagenet": {
        "url": "https://download.pytorch.org/models/resnext101_32x8d-8ba56ff5.pth",
        "sha256_prefix": "8ba56ff5",
        "top1": 79.312,
    },
}



def download_torchvision_checkpoint(name="maskrcnn_resnet50_fpn_coco", url=None,
                                    cache_dir=None, progress=True):
    """Path of one of TORCHVISION_CHECKPOINTS: taken from the cache (mrcnn.download's: the
    cache_dir argument, $MRCNN_CACHE_DIR or ~/.keras/models) or downloaded there. The file's
    SHA-256 must start with the hash part of torchvision's file name, as torch.hub checks;
    url= points at a mirror (the same check applies)."""
    if name not in TORCHVISION_CHECKPOINTS:
        raise ValueError(f"unknown torchvision checkpoint {name!r}; known: "
                         f"{sorted(TORCHVISION_CHECKPOINTS)}")
    entry = TORCHVISION_CHECKPOINTS[name]
    prefix = entry["sha256_prefix"]

    def check(path):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if not digest.hexdigest().startswith(prefix):
            raise ValueError(f"{path}: SHA-256 {digest.hexdigest()} does not start with "
                             f"{prefix}, the hash in torchvision's file name")

    path = os.path.join(get_cache_dir(cache_dir), entry["url"].rsplit("/", 1)[-1])
    return download_file(url or entry["url"], path, validate=check, progress=progress)
