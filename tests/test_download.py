"""Downloads (mrcnn.download, utils.download_trained_weights, get_imagenet_weights) against a
loopback http.server that each test starts and stops; and the distribution name.

Every connection these tests make is checked to go to 127.0.0.1 (see _loopback_only).
"""

import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mrcnn import download, weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch, tmp_path):
    """Fails any connection to an address other than 127.0.0.1, and points the download cache
    at a temporary directory (the real ~/.keras is never touched)."""
    real = socket.create_connection

    def create_connection(address, *args, **kwargs):
        assert address[0] in ("127.0.0.1", "localhost"), f"test tried to reach {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving `root`. Paths under /truncate/ send the full
    Content-Length but only half of the body, then close; paths under /stall/ send half and
    then wait until release() is called. requests lists every path asked for."""

    def __init__(self, root):
        self.root = str(root)
        self.requests = []
        self.released = threading.Event()
        self.half_sent = threading.Event()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=server.root, **kwargs)

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                for mode in ("truncate", "stall"):
                    if self.path.startswith(f"/{mode}/"):
                        return self._partial(self.path[len(mode) + 1:], mode)
                return super().do_GET()

            def _partial(self, name, mode):
                with open(os.path.join(server.root, name.lstrip("/")), "rb") as f:
                    data = f.read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                if mode == "stall":
                    server.half_sent.set()
                    server.released.wait(30)
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"

    def release(self):
        self.released.set()

    def stop(self):
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    s = Server(root)
    yield s
    s.stop()


def _serve(server, name, data):
    path = os.path.join(server.root, name)
    with open(path, "wb") as f:
        f.write(data)
    return server.url(name), hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def _leftovers(directory):
    return [n for n in os.listdir(directory) if n.endswith(".part")] \
        if os.path.isdir(directory) else []


def _tiny_model(first_layer="conv1"):
    """A small Keras model whose first layer has the shapes of ResNet's conv1."""
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(64, 7, strides=2, name=first_layer)(inputs)
    x = keras.layers.Conv2D(4, 1, name="head")(x)
    return keras.Model(inputs, x)


def _h5_bytes(tmp_path, first_layer="conv1"):
    path = str(tmp_path / f"tiny_{first_layer}.h5")
    weights.save_weights_h5(_tiny_model(first_layer), path)
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_good_file_downloads_then_is_reused_without_network(server, tmp_path, capsys,
                                                             algorithm):
    data = np.random.default_rng(0).bytes(300_000)
    url, md5, sha256 = _serve(server, "blob.bin", data)
    check = {"md5": md5} if algorithm == "md5" else {"sha256": sha256}
    path = download.download_file(url, **check)
    assert path == str(tmp_path / "cache" / "blob.bin")  # the URL's name in $MRCNN_CACHE_DIR
    with open(path, "rb") as f:
        assert f.read() == data
    err = capsys.readouterr().err
    assert "Downloading blob.bin" in err and "293.0 KiB / 293.0 KiB (100.0%)" in err
    assert "/s" in err
    assert server.requests == ["/blob.bin"]
    assert download.download_file(url, **check) == path
    assert server.requests == ["/blob.bin"]  # second call: from the cache, no request
    assert _leftovers(tmp_path / "cache") == []


def test_explicit_path_and_cache_dir(server, tmp_path):
    url, md5, _ = _serve(server, "a.bin", b"abc" * 1000)
    assert download.get_cache_dir(str(tmp_path / "c2")) == str(tmp_path / "c2")
    assert download.download_file(url, cache_dir=str(tmp_path / "c2"), md5=md5,
                                  progress=False) == str(tmp_path / "c2" / "a.bin")
    dest = tmp_path / "deep" / "dir" / "b.bin"
    assert download.download_file(url, str(dest), progress=False) == str(dest)
    assert dest.read_bytes() == b"abc" * 1000
    with pytest.raises(ValueError, match="md5 or sha256"):
        download.download_file(url, str(dest), md5=md5, sha256="0" * 64)


def test_corrupted_file_is_rejected_by_its_hash(server, tmp_path):
    good = np.random.default_rng(1).bytes(50_000)
    bad = bytearray(good)
    bad[1234] ^= 0xFF
    url, _, _ = _serve(server, "w.h5", bytes(bad))
    expected = hashlib.md5(good).hexdigest()
    actual = hashlib.md5(bytes(bad)).hexdigest()
    dest = tmp_path / "out" / "w.h5"
    with pytest.raises(download.HashMismatchError) as e:
        download.download_file(url, str(dest), md5=expected, progress=False)
    msg = str(e.value)
    assert url in msg and expected in msg and actual in msg and str(dest) in msg
    assert isinstance(e.value, OSError) and e.value.url == url and e.value.path == str(dest)
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_cached_file_with_a_wrong_hash_is_downloaded_again(server, tmp_path):
    data = b"the real weights" * 100
    url, md5, _ = _serve(server, "r.bin", data)
    dest = tmp_path / "cache" / "r.bin"
    dest.parent.mkdir()
    dest.write_bytes(data[:-5])  # e.g. a half file left by another tool
    assert download.download_file(url, md5=md5, progress=False) == str(dest)
    assert dest.read_bytes() == data and server.requests == ["/r.bin"]


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_url_names_url_and_local_path(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/models/x.h5"
    with pytest.raises(download.DownloadError) as e:
        download.download_file(url, progress=False, timeout=5)
    path = str(tmp_path / "cache" / "x.h5")
    assert isinstance(e.value, OSError)
    assert url in str(e.value) and f"save it as {path}" in str(e.value)
    assert not os.path.exists(path) and _leftovers(tmp_path / "cache") == []


def test_http_error_names_the_status(server, tmp_path):
    with pytest.raises(download.DownloadError, match="HTTP 404.*missing.h5"):
        download.download_file(server.url("missing.h5"), str(tmp_path / "m.h5"), progress=False)
    assert not (tmp_path / "m.h5").exists()


def test_truncated_transfer_leaves_no_file(server, tmp_path):
    data = np.random.default_rng(2).bytes(200_000)
    _serve(server, "t.bin", data)
    dest = tmp_path / "dl" / "t.bin"
    with pytest.raises(download.DownloadError, match="cut short: received 100000 of 200000"):
        download.download_file(server.url("truncate/t.bin"), str(dest), progress=False)
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_killed_download_leaves_no_file_under_the_final_name(server, tmp_path):
    data = np.random.default_rng(3).bytes(400_000)
    _, md5, _ = _serve(server, "k.bin", data)
    dest = tmp_path / "dl" / "k.bin"
    code = ("import sys; from mrcnn.download import download_file; "
            "download_file(sys.argv[1], sys.argv[2], progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, server.url("stall/k.bin"), str(dest)],
                            cwd=ROOT)
    try:
        deadline = time.time() + 60
        # wait until the server has sent the first half and the child has written some of it
        # into its temporary file
        while time.time() < deadline:
            parts = _leftovers(dest.parent)
            if server.half_sent.is_set() and parts and \
                    os.path.getsize(dest.parent / parts[0]) > 0:
                break
            assert proc.poll() is None, "the download ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the child never wrote any of the first half")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.release()
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists()  # only the ".part" file, which is never read
    # the next run downloads the whole file and verifies it
    assert download.download_file(server.url("k.bin"), str(dest), md5=md5,
                                  progress=False) == str(dest)
    assert dest.read_bytes() == data


def test_download_trained_weights_fetches_a_real_h5(server, tmp_path, capsys):
    from mrcnn import utils

    data = _h5_bytes(tmp_path)
    url, _, _ = _serve(server, "mask_rcnn_coco.h5", data)
    coco_path = str(tmp_path / "project" / "mask_rcnn_coco.h5")
    assert utils.download_trained_weights(coco_path, url=url) == coco_path
    assert "Downloading pretrained model to" in capsys.readouterr().out
    # The same layers as the file served (Keras numbers input layers per process).
    assert weights.file_layer_names(coco_path) == \
        weights.file_layer_names(str(tmp_path / "tiny_conv1.h5"))
    assert weights.file_layer_names(coco_path)[1:] == ["conv1", "head"]
    with open(coco_path, "rb") as f:
        assert f.read() == data
    utils.download_trained_weights(coco_path, verbose=0, url=url)  # reused
    assert server.requests == ["/mask_rcnn_coco.h5"]


def test_download_trained_weights_rejects_a_file_that_is_not_weights(server, tmp_path):
    from mrcnn import utils

    url, _, _ = _serve(server, "page.h5", b"<html>rate limited</html>")
    coco_path = tmp_path / "mask_rcnn_coco.h5"
    with pytest.raises(download.DownloadError, match="invalid file.*not a readable HDF5"):
        utils.download_trained_weights(str(coco_path), verbose=0, url=url)
    assert not coco_path.exists() and _leftovers(tmp_path) == []


@pytest.fixture
def no_local_imagenet(monkeypatch, tmp_path):
    """The repository root and ../shared/data hold no ImageNet file in these tests."""
    monkeypatch.setattr(weights, "REPO_ROOT", str(tmp_path / "repo"))
    monkeypatch.setattr(weights, "SHARED_DATA_DIR", str(tmp_path / "shared"))


def test_imagenet_weights_download_into_the_cache_and_local_files_come_first(
        server, tmp_path, no_local_imagenet):
    name = weights.IMAGENET_FILES["resnet101"]
    data = _h5_bytes(tmp_path, first_layer="conv1_conv")  # keras.applications' naming
    url, md5, _ = _serve(server, name, data)
    with pytest.raises(download.HashMismatchError, match="0123"):
        weights.find_imagenet_weights("resnet101", url=url, md5="0123" * 8, progress=False)
    path = weights.find_imagenet_weights("resnet101", url=url, md5=md5, progress=False)
    assert path == str(tmp_path / "cache" / name)
    assert weights.find_imagenet_weights("resnet101", url=url, md5=md5) == path
    assert len(server.requests) == 2  # the rejected one and the good one
    # a file in a search directory is used as it is, without a request
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / name).write_bytes(data)
    assert weights.find_imagenet_weights("resnet101", search=[str(mine)], url=url) == \
        str(mine / name)
    assert len(server.requests) == 2


def test_imagenet_download_rejects_an_h5_without_resnet_layers(server, tmp_path,
                                                               no_local_imagenet):
    url, _, _ = _serve(server, "other.h5", _h5_bytes(tmp_path, first_layer="stem"))
    with pytest.raises(download.DownloadError, match=r"none of the layers \['conv1'"):
        weights.find_imagenet_weights("resnet50", url=url, progress=False)
    assert not (tmp_path / "cache" / weights.IMAGENET_FILES["resnet50"]).exists()


def test_imagenet_offline_error_names_url_and_every_place(tmp_path, no_local_imagenet):
    url = f"http://127.0.0.1:{_closed_port()}/resnet50.h5"
    with pytest.raises(download.DownloadError) as e:
        weights.find_imagenet_weights("resnet50", url=url, progress=False)
    msg = str(e.value)
    name = weights.IMAGENET_FILES["resnet50"]
    assert url in msg and str(tmp_path / "cache" / name) in msg
    assert str(tmp_path / "repo") in msg and str(tmp_path / "shared") in msg
    with pytest.raises(FileNotFoundError, match=f"{name} not found.*does not download"):
        weights.find_imagenet_weights("resnet50", download=False)
    with pytest.raises(ValueError, match="no ImageNet weights known for backbone 'mini'"):
        weights.find_imagenet_weights("mini")


def test_known_urls_and_hashes():
    assert weights.IMAGENET_URLS["resnet50"] == (
        "https://github.com/fchollet/deep-learning-models/releases/download/v0.2/"
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")  # matterport's
    assert weights.KNOWN_MD5[weights.IMAGENET_URLS["resnet50"]] == \
        "a268eb855778b3df3c7506639542a6af"
    for backbone, url in weights.IMAGENET_URLS.items():
        assert url.endswith("/" + weights.IMAGENET_FILES[backbone])
        assert len(weights.KNOWN_MD5[url]) == 32


@pytest.mark.slow
def test_get_imagenet_weights_as_matterport_calls_it(server, tmp_path, monkeypatch,
                                                     no_local_imagenet):
    """matterport's train flow: model.load_weights(model.get_imagenet_weights(), by_name=True)."""
    from mrcnn import model as modellib
    from tests.conftest import TinyConfig

    tiny = _tiny_model()
    path = str(tmp_path / "tiny.h5")
    weights.save_weights_h5(tiny, path)
    with open(path, "rb") as f:
        data = f.read()
    url, md5, _ = _serve(server, weights.IMAGENET_FILES["resnet50"], data)
    monkeypatch.setitem(weights.IMAGENET_URLS, "resnet50", url)  # stands in for the release
    monkeypatch.setitem(weights.KNOWN_MD5, url, md5)
    model = modellib.MaskRCNN(mode="training", config=TinyConfig(),
                              model_dir=str(tmp_path / "logs"))
    got = model.get_imagenet_weights()
    assert got == str(tmp_path / "cache" / weights.IMAGENET_FILES["resnet50"])
    model.load_weights(got, by_name=True)
    for a, b in zip(model.keras_model.get_layer("conv1").weights, tiny.get_layer("conv1").weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert model.get_imagenet_weights() == got and server.requests == [
        "/" + weights.IMAGENET_FILES["resnet50"]]


def _declared_name():
    out = subprocess.run([sys.executable, "setup.py", "--name"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def test_distribution_name_is_not_the_unrelated_mrcnn():
    import importlib.metadata

    assert _declared_name() == "mrcnn-keras3"  # "mrcnn" on the package index is another project
    try:
        dist = importlib.metadata.distribution("mrcnn-keras3")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("mrcnn-keras3 is not installed in this environment (setup.py checked)")
    assert dist.metadata["Name"] == "mrcnn-keras3"
    assert "mrcnn-keras3" in importlib.metadata.packages_distributions().get("mrcnn", [])


def test_torchvision_checkpoint_download_checks_the_sha256_prefix(server, monkeypatch):
    from mrcnn import torchvision_weights as tvw

    good = b"torchvision-checkpoint-bytes" * 100
    url, _, sha = _serve(server, "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth", good)
    entry = dict(tvw.TORCHVISION_CHECKPOINTS["maskrcnn_resnet50_fpn_coco"],
                 sha256_prefix=sha[:8])
    monkeypatch.setitem(tvw.TORCHVISION_CHECKPOINTS, "maskrcnn_resnet50_fpn_coco", entry)
    path = tvw.download_torchvision_checkpoint(url=url, progress=False)
    assert os.path.basename(path) == "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    assert open(path, "rb").read() == good
    assert tvw.download_torchvision_checkpoint(url=url, progress=False) == path
    assert len(server.requests) == 1  # reused from the cache
    os.remove(path)
    bad_url, _, _ = _serve(server, "other.pth", b"not the checkpoint")
    with pytest.raises(Exception, match="does not start with"):
        tvw.download_torchvision_checkpoint(url=bad_url, progress=False)
    assert not os.path.exists(path) and not _leftovers(os.path.dirname(path))
