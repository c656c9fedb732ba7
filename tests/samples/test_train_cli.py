"""The training command line shared by samples/*/train.py (mrcnn.cli): parsing, --weights
resolution, and short real runs of the balloon, COCO-JSON and COCO samples."""

import json
import os

import numpy as np
import pytest

from mrcnn import cli
from mrcnn.weights import SHARED_DATA_DIR

BALLOON = os.path.join(SHARED_DATA_DIR, "balloon")
needs_balloon = pytest.mark.skipif(not os.path.isdir(BALLOON),
                                   reason=f"real balloon data not found at {BALLOON}")
# Tiny model and schedule: one epoch of 2 steps of 2 images at 128 px.
TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--image-size", "128", "--seed", "0",
        "--workers", "1"]


def _parse(argv):
    p = cli.training_parser("test", "thing", epochs=7, lr_drop_epochs=2)
    return cli.check_args(p.parse_args(argv), p)


def test_shared_options_and_defaults():
    a = _parse([])
    assert (a.weights, a.epochs, a.lr_drop_epochs, a.limit, a.seed, a.layers) == \
        ("none", 7, 2, 0, 0, "all")
    assert a.out.endswith(os.path.join("results", "thing"))
    a = _parse(["--dataset", "d", "--weights", "coco", "--logs", "L", "--epochs", "3",
                "--limit", "4", "--seed", "5"])
    assert (a.dataset, a.weights, a.logs, a.epochs, a.limit, a.seed) == ("d", "coco", "L", 3, 4, 5)
    assert a.layers == "heads"  # matterport's fine-tuning default with COCO weights
    for layers in cli.LAYER_CHOICES:
        assert _parse(["--weights", "coco", "--layers", layers]).layers == layers
    assert _parse(["--weights", "some/file.h5"]).weights == "some/file.h5"


@pytest.mark.parametrize("argv, message", [
    (["--layers", "2+"], "invalid choice"),
    (["--dataset-format", "coco", "--train-json", "x.json"], "--val-json, --images"),
    (["--dataset-format", "coco", "--train-json", "nope.json", "--val-json", "nope.json",
      "--images", "."], "--train-json: file not found: nope.json"),
    (["--limit", "-1"], "--limit"),
    (["--set", "NOPE=1"], "NOPE is not a Config attribute"),
    (["--set", "LEARNING_RATE=fast"], "LEARNING_RATE: 'fast' is not a Python literal"),
    (["--set", "lr=0.1"], "upper-case Config attribute"),
])
def test_bad_options_fail_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit):
        _parse(argv)
    assert message in capsys.readouterr().err


def test_sample_parsers_share_the_shape(capsys):
    from samples.balloon import train as balloon_train
    from samples.coco import train as coco_train
    from samples.shapes import train as shapes_train

    a = balloon_train.parse_args(["--dataset", "d", "--limit", "3", "--layers", "4+"])
    assert (a.weights, a.layers, a.limit, a.backbone) == ("none", "4+", 3, "mini")
    a = balloon_train.parse_args(["--dataset", "d", "--weights", "coco"])
    assert (a.layers, a.backbone) == ("heads", "resnet101")
    a = coco_train.parse_args(["--dataset", "d", "--weights", "last", "--epochs", "2"])
    assert (a.weights, a.epochs, a.layers) == ("last", 2, "all")
    a = shapes_train.parse_args([])
    assert (a.epochs, a.lr_drop_epochs, a.val_images, a.weights, a.backbone, a.precision) == \
        (28, 6, 50, "none", "mini", "auto")
    assert coco_train.parse_args(["--dataset", "d"]).precision == "float32"
    assert balloon_train.parse_args(["--dataset", "d"]).precision == "auto"
    for module, argv in ((balloon_train, []), (coco_train, []),
                         (shapes_train, ["--dataset", "x"])):
        with pytest.raises(SystemExit):
            module.parse_args(argv)
        assert "--dataset" in capsys.readouterr().err


class FakeModel:
    """Records load calls; the weights-resolution logic is what is tested here."""

    def __init__(self, num_classes=2, last=None, imagenet=None, num_keypoints=0):
        self.config = type("C", (), {"NUM_CLASSES": num_classes,
                                     "NUM_KEYPOINTS": num_keypoints})()
        self._last, self._imagenet = last, imagenet
        self.calls = []

    def find_last(self):
        if self._last is None:
            raise FileNotFoundError("no checkpoint")
        return self._last

    def get_imagenet_weights(self):
        return self._imagenet

    def load_weights(self, path, by_name=False, exclude=None, verbose=1):
        self.calls.append(("load_weights", path, by_name, exclude))

    def load_imagenet_weights(self, path, verbose=1):
        self.calls.append(("load_imagenet_weights", path))

    def load_torchvision_weights(self, path, exclude=None, verbose=1):
        self.calls.append(("load_torchvision_weights", path, exclude))


def test_weights_modes_resolve_and_load(tmp_path, monkeypatch):
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"x")
    model = FakeModel(last=str(weights), imagenet=str(tmp_path / "imagenet.h5"))
    assert cli.load_initial_weights(model, "none", verbose=0) is None and model.calls == []
    assert cli.load_initial_weights(model, str(weights), verbose=0) == str(weights)
    assert model.calls[-1] == ("load_weights", str(weights), True, None)
    assert cli.load_initial_weights(model, "last", verbose=0) == str(weights)
    cli.load_initial_weights(model, "imagenet", verbose=0)
    assert model.calls[-1] == ("load_imagenet_weights", str(tmp_path / "imagenet.h5"))
    with pytest.raises(FileNotFoundError, match="no_such.h5: no such file"):
        cli.resolve_weights(model, str(tmp_path / "no_such.h5"))

    # coco: the file in --weights-dir; heads excluded when the class count is not COCO's.
    coco = tmp_path / cli.COCO_WEIGHTS_NAME
    coco.write_bytes(b"x")
    cli.load_initial_weights(model, "coco", weights_dir=str(tmp_path), verbose=0)
    assert model.calls[-1] == ("load_weights", str(coco), True, cli.HEAD_LAYERS)
    model81 = FakeModel(num_classes=81)
    cli.load_initial_weights(model81, "coco", weights_dir=str(tmp_path), verbose=0)
    assert model81.calls[-1] == ("load_weights", str(coco), True, None)

    # coco, file missing: utils.download_trained_weights(path) fetches it (here: a stand-in).
    from mrcnn import utils

    fetched = []

    def fake_download(path, verbose=1):
        fetched.append(path)
        with open(path, "wb") as f:
            f.write(b"x")

    monkeypatch.setattr(utils, "download_trained_weights", fake_download)
    other = tmp_path / "other"
    other.mkdir()
    assert cli.resolve_weights(model, "coco", str(other)) == str(other / cli.COCO_WEIGHTS_NAME)
    assert fetched == [str(other / cli.COCO_WEIGHTS_NAME)]


def _check_run(summary, out, val_images):
    with open(out / "metrics.json") as f:
        saved = json.load(f)
    assert saved["mask_mAP50"] == summary["mask_mAP50"]
    for key in ("mask_mAP50", "bbox_mAP50", "coco_mask_AP", "coco_bbox_AP"):
        assert 0.0 <= saved[key] <= 1.0 or saved[key] == -1.0, key
    assert saved["val_images"] == val_images and len(saved["per_image"]) == val_images
    assert os.path.isfile(saved["checkpoint"])
    return saved


@needs_balloon
@pytest.mark.slow
def test_balloon_train_limit_4_writes_metrics_then_resumes(tmp_path, capsys):
    from samples.balloon import train

    logs, out = tmp_path / "logs", tmp_path / "out"
    common = ["--dataset", BALLOON, "--limit", "4", "--logs", str(logs), "--out", str(out),
              "--copy-paste", "6"]
    summary = train.main(common + ["--weights", "none"] + TINY)
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == str(out / "metrics.json")
    # Copy-paste composites are added to the training set only.
    assert "Training images: 4 (+6 generated), validation images: 4, classes: ['balloon']" \
        in printed
    assert summary["generated_train_images"] == 6
    assert any(line.startswith("Checkpoints: ") and str(logs) in line for line in printed)
    saved = _check_run(summary, out, 4)
    assert saved["train_images"] == 4 and saved["steps"] == 2 and saved["epochs"] == 1
    for key in ("picture", "splash", "curve"):
        assert os.path.isfile(saved[key]), key
    with open(saved["curve_json"]) as f:
        curve = json.load(f)
    assert [e["epoch"] for e in curve] == [1] and "val_mask_mAP50" in curve[0]
    assert np.isfinite(curve[0]["loss"])

    # --weights last continues the same run directory with epoch 2.
    first_checkpoint = saved["checkpoint"]
    summary = train.main(common + ["--weights", "last"] + TINY[:1] + ["2"] + TINY[2:])
    assert summary["epochs"] == 2 and summary["steps"] == 2
    assert os.path.dirname(summary["checkpoint"]) == os.path.dirname(first_checkpoint)
    assert summary["checkpoint"].endswith("_0002.h5")


@needs_balloon
@pytest.mark.slow
def test_balloon_train_from_coco_json(tmp_path):
    from mrcnn.dataset import Dataset

    if not hasattr(Dataset, "load_coco_json"):
        pytest.skip("Dataset.load_coco_json is not in this tree yet")
    from samples.balloon import train

    out = tmp_path / "out"
    summary = train.main(["--dataset-format", "coco",
                          "--train-json", os.path.join(BALLOON, "coco", "train.json"),
                          "--val-json", os.path.join(BALLOON, "coco", "val.json"),
                          "--images", os.path.join(BALLOON, "train"),
                          "--val-images", os.path.join(BALLOON, "val"),
                          "--weights", "none", "--limit", "4", "--logs", str(tmp_path / "logs"),
                          "--out", str(out)] + TINY)
    saved = _check_run(summary, out, 4)
    assert saved["train_images"] == 4


@pytest.mark.slow
def test_coco_train_on_a_generated_coco_set(tmp_path):
    pytest.importorskip("pycocotools")
    import skimage.io

    from samples.coco import train

    # A tiny COCO 2017 layout: train and val, one category, squares on a flat background.
    rng = np.random.default_rng(0)
    (tmp_path / "annotations").mkdir()
    for subset, count in (("train", 4), ("val", 2)):
        (tmp_path / f"{subset}2017").mkdir()
        images, anns = [], []
        for i in range(1, count + 1):
            image = np.full((64, 64, 3), 60, np.uint8)
            y, x = rng.integers(5, 35, 2)
            image[y:y + 20, x:x + 20] = 200
            name = f"{i:012d}.png"
            skimage.io.imsave(str(tmp_path / f"{subset}2017" / name), image,
                              check_contrast=False)
            images.append({"id": i, "file_name": name, "height": 64, "width": 64})
            poly = [int(v) for v in (x, y, x + 20, y, x + 20, y + 20, x, y + 20)]
            anns.append({"id": i, "image_id": i, "category_id": 5, "iscrowd": 0,
                         "segmentation": [poly], "area": 400.0,
                         "bbox": [int(x), int(y), 20, 20]})
        (tmp_path / "annotations" / f"instances_{subset}2017.json").write_text(json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 5, "name": "sq"}]}))
    out = tmp_path / "out"
    summary = train.main(["--dataset", str(tmp_path), "--year", "2017", "--weights", "none",
                          "--backbone", "mini", "--images-per-step", "1",
                          "--logs", str(tmp_path / "logs"), "--out", str(out)] + TINY)
    saved = _check_run(summary, out, 2)
    assert saved["train_images"] == 4 and saved["layers"] == "all"


def test_learning_curve_files_and_resume(tmp_path):
    from mrcnn.learning_curve import LearningCurve, read_curve

    entries = [{"epoch": e, "loss": 3.0 / e, "val_loss": 4.0 / e} for e in (1, 2, 3)]
    entries[1].update(val_mask_mAP50=0.25, val_bbox_mAP50=0.3)
    curve = LearningCurve(None, None, "unused_{epoch:04d}.h5", initial=entries)
    json_path, png_path = curve.save(str(tmp_path / "curve"), title="t")
    with open(png_path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert read_curve(json_path, 2) == entries[:2]
    assert read_curve(str(tmp_path / "missing.json"), 2) == []
    # Keras' epoch index 2 is epoch 3: its new entry replaces the earlier one.
    curve.on_epoch_end(2, {"loss": 0.5})
    assert [e["epoch"] for e in curve.epochs] == [1, 2, 3]
    assert curve.epochs[-1]["loss"] == 0.5 and "val_loss" not in curve.epochs[-1]


def test_set_overrides_the_sample_config_and_is_validated():
    from mrcnn.config import ConfigError
    from samples.shapes import train as shapes_train

    task = cli.TrainingTask("shapes", shapes_train.ShapesTrainConfig,
                            shapes_train.ShapesInferenceConfig, None)

    class Data:
        num_classes = shapes_train.ShapesTrainConfig.NUM_CLASSES

    args = shapes_train.parse_args(["--set", "RPN_CONV_CHANNELS=256", "RPN_ANCHOR_SCALES=(4, 8, "
                                    "16, 32, 64)", "--lr", "0.5", "--set", "LEARNING_RATE=0.02"])
    assert args.set == [("RPN_CONV_CHANNELS", 256), ("RPN_ANCHOR_SCALES", (4, 8, 16, 32, 64)),
                        ("LEARNING_RATE", 0.02)]
    train_cls, infer_cls = cli._config_classes(task, args, Data())
    for config in (train_cls(), infer_cls()):
        assert config.RPN_CONV_CHANNELS == 256 and config.RPN_ANCHOR_SCALES == (4, 8, 16, 32, 64)
        assert config.LEARNING_RATE == 0.02  # --set wins over --lr
    args = shapes_train.parse_args(["--set", "RPN_CONV_CHANNELS=-3"])
    train_cls, _ = cli._config_classes(task, args, Data())
    with pytest.raises(ConfigError, match="RPN_CONV_CHANNELS"):  # checked when built
        train_cls()


def test_balloon_crop_trains_on_crops_and_infers_on_whole_photos(capsys):
    """--crop-size: training on random crops (IMAGE_RESIZE_MODE crop) of photos at
    --image-size, inference on the whole photo at that size; --set still wins."""
    from samples.balloon import train as balloon_train

    task = cli.TrainingTask("balloon", balloon_train.BalloonTrainConfig,
                            balloon_train.BalloonInferenceConfig, None,
                            config_overrides=balloon_train.config_overrides,
                            inference_overrides=balloon_train.inference_overrides)

    class Data:
        num_classes = 2

    args = balloon_train.parse_args(["--dataset", "d", "--image-size", "640", "--crop-size",
                                     "320"])
    train_cls, infer_cls = cli._config_classes(task, args, Data())
    train, infer = train_cls(), infer_cls()
    assert train.IMAGE_RESIZE_MODE == "crop" and list(train.IMAGE_SHAPE) == [320, 320, 3]
    assert infer.IMAGE_RESIZE_MODE == "square" and list(infer.IMAGE_SHAPE) == [640, 640, 3]
    args = balloon_train.parse_args(["--dataset", "d", "--image-size", "256"])
    train_cls, infer_cls = cli._config_classes(task, args, Data())
    assert list(train_cls().IMAGE_SHAPE) == list(infer_cls().IMAGE_SHAPE) == [256, 256, 3]
    args = balloon_train.parse_args(["--dataset", "d", "--set", "IMAGE_MAX_DIM=384",
                                     "IMAGE_MIN_DIM=384"])
    _, infer_cls = cli._config_classes(task, args, Data())
    assert list(infer_cls().IMAGE_SHAPE) == [384, 384, 3]
    with pytest.raises(SystemExit):
        balloon_train.parse_args(["--dataset", "d", "--image-size", "256", "--crop-size", "320"])
    assert "--crop-size 320 is larger than the image size 256" in capsys.readouterr().err


def test_strategy_splits_the_global_batch_over_replicas():
    from samples.shapes import train as shapes_train

    args = shapes_train.parse_args(["--strategy", "multiworker"])
    assert args.strategy == "multiworker"
    task = cli.TrainingTask("shapes", shapes_train.ShapesTrainConfig,
                            shapes_train.ShapesInferenceConfig, None)

    class Two:
        num_classes = shapes_train.ShapesTrainConfig.NUM_CLASSES

    train_cls, _ = cli._config_classes(task, args, Two(), replicas=2)
    config = train_cls()
    assert (config.GPU_COUNT, config.IMAGES_PER_GPU, config.BATCH_SIZE) == (2, 2, 4)
    with pytest.raises(ValueError, match="does not split over 3 replicas"):
        cli._config_classes(task, args, Two(), replicas=3)


@pytest.mark.slow
def test_launcher_runs_the_shapes_sample_on_two_workers(tmp_path):
    """The README's multi-worker command, as written, on one machine: two worker processes
    train together; only the chief writes checkpoints and results."""
    import subprocess
    import sys

    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    logs, out = tmp_path / "logs", tmp_path / "out"
    cmd = [sys.executable, "-m", "mrcnn.distributed", "launch", "--workers", "2", "--",
           os.path.join(root, "samples", "shapes", "train.py"), "--strategy", "multiworker",
           "--epochs", "1", "--steps-per-epoch", "2", "--limit", "4", "--workers", "1",
           "--curve-every", "0", "--logs", str(logs), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(tmp_path),
                          timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = os.listdir(logs)
    assert len(runs) == 1  # the other worker wrote to a temporary directory, now removed
    assert "mask_rcnn_shapes_0001.h5" in os.listdir(logs / runs[0])
    with open(out / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["steps"] == 2 and metrics["images_per_step"] == 4
    assert "[worker 1]" in done.stdout + done.stderr


def test_weights_torchvision_picks_the_checkpoint_and_excludes_class_layers(tmp_path,
                                                                            monkeypatch):
    from mrcnn import torchvision_weights as tvw

    asked = []

    def fake_download(name):
        asked.append(name)
        return str(tmp_path / f"{name}.pth")

    monkeypatch.setattr(tvw, "download_torchvision_checkpoint", fake_download)
    coco81 = FakeModel(num_classes=81)
    cli.load_initial_weights(coco81, "torchvision", verbose=0)
    assert coco81.calls[-1] == ("load_torchvision_weights",
                                str(tmp_path / "maskrcnn_resnet50_fpn_coco.pth"),
                                tvw.CLASS_SPECIFIC_LAYERS)
    same = FakeModel(num_classes=91)
    cli.load_initial_weights(same, "torchvision", verbose=0)
    assert same.calls[-1][2] is None
    person = FakeModel(num_classes=2, num_keypoints=17)
    cli.load_initial_weights(person, "torchvision", verbose=0)
    assert asked[-1] == "keypointrcnn_resnet50_fpn_coco" and person.calls[-1][2] is None
    assert _parse(["--weights", "torchvision"]).layers == "heads"
    v2 = FakeModel(num_classes=91)
    cli.load_initial_weights(v2, "torchvision_v2", verbose=0)
    assert asked[-1] == "maskrcnn_resnet50_fpn_v2_coco"
    assert v2.calls[-1] == ("load_torchvision_weights",
                            str(tmp_path / "maskrcnn_resnet50_fpn_v2_coco.pth"), None)
    assert _parse(["--weights", "torchvision_v2"]).layers == "heads"
    with pytest.raises(ValueError, match="no v2 Keypoint R-CNN"):
        cli.load_initial_weights(person, "torchvision_v2", verbose=0)


def test_coco_train_with_torchvision_weights_uses_the_preset_architecture():
    from mrcnn.presets import TorchvisionMaskRCNNConfig
    from samples.coco import train as coco_train

    args = coco_train.parse_args(["--dataset", "unused", "--weights", "torchvision"])
    overrides = coco_train.config_overrides(args)
    config = type("C", (coco_train.CocoConfig,), overrides)()
    preset = TorchvisionMaskRCNNConfig()
    for name in ("RESNET_STRIDE_ON_3X3", "RPN_CONV_CHANNELS", "ROI_ALIGN_MODE",
                 "DETECTION_PER_CLASS", "HEADS_BATCH_NORM", "IMAGE_MAX_DIM"):
        assert getattr(config, name) == getattr(preset, name), name
    np.testing.assert_allclose(config.STD_PIXEL, preset.STD_PIXEL)
    assert config.NAME == "coco" and config.NUM_CLASSES == 81


def test_coco_train_with_torchvision_v2_weights_uses_the_v2_preset():
    from mrcnn.presets import TorchvisionMaskRCNNV2Config
    from samples.coco import train as coco_train

    args = coco_train.parse_args(["--dataset", "unused", "--weights", "torchvision_v2"])
    config = type("C", (coco_train.CocoConfig,), coco_train.config_overrides(args))()
    preset = TorchvisionMaskRCNNV2Config()
    for name in ("RESNET_STRIDE_ON_3X3", "RPN_CONV_CHANNELS", "ROI_ALIGN_MODE", "FPN_BATCH_NORM",
                 "RPN_CONV_DEPTH", "BOX_HEAD", "HEADS_BATCH_NORM", "BN_EPSILON"):
        assert getattr(config, name) == getattr(preset, name), name
    assert config.NAME == "coco" and config.NUM_CLASSES == 81 and config.HEADS_BATCH_NORM
    keypoints = coco_train.parse_args(["--dataset", "unused", "--weights", "torchvision_v2",
                                       "--task", "keypoints"])
    with pytest.raises(SystemExit, match="no v2 Keypoint R-CNN"):
        coco_train.config_overrides(keypoints)
