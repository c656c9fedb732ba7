"""End to end: `python -m mrcnn.video` with a tiny model (the mini backbone, random weights
saved to h5) on a generated clip; a run killed mid-way and restarted writes the same JSON as
an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mrcnn.video import read_frames, video_info
from samples.shapes.train import BACKBONES, ShapesInferenceConfig
from tests.reference.video_scene import Obj, scene

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FRAMES = 30

VideoCliConfig = type("VideoCliConfig", (ShapesInferenceConfig,), {
    **BACKBONES["mini"], "IMAGES_PER_GPU": 2, "DETECTION_MIN_CONFIDENCE": 0.0,
    "DETECTION_MAX_INSTANCES": 10, "POST_NMS_ROIS_INFERENCE": 100})


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-m", "mrcnn.video",
                             "--config", "tests.test_video_cli:VideoCliConfig", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_cli_writes_video_and_json_and_resumes_after_a_kill(tmp_path):
    from mrcnn import model as modellib
    from mrcnn.video.io import VideoWriter

    objects = [Obj(1, 1, (230, 60, 60), 24, (30, 20), (0, 2)),
               Obj(2, 2, (60, 230, 60), 28, (90, 110), (0, -2))]
    images, _, _ = scene(objects, FRAMES, (128, 128))
    clip = str(tmp_path / "clip.mp4")
    with VideoWriter(clip, 10.0, (128, 128)) as w:
        for image in images:
            w.write(image)
    model = modellib.MaskRCNN("inference", VideoCliConfig(), str(tmp_path / "logs"))
    weights = str(tmp_path / "random.h5")
    model.save_weights(weights)
    common = ["--weights", weights, "--input", clip, "--batch-size", "2",
              "--logs", str(tmp_path / "logs"), "--class-names", "BG,square,circle,triangle"]

    run = _cli(*common, "--output", str(tmp_path / "out.mp4"), "--json",
               str(tmp_path / "full.json"))
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["frames"] == FRAMES and summary["detected_frames"] == FRAMES
    assert "frame" in stderr + stdout and "fps" in stderr + stdout  # the progress bar
    info = video_info(str(tmp_path / "out.mp4"))
    assert (info.width, info.height, info.fps) == (128, 128, 10.0)
    assert sum(1 for _ in read_frames(str(tmp_path / "out.mp4"))) == FRAMES
    full = json.load(open(tmp_path / "full.json"))
    assert full and all(len(e["segmentations"]) == FRAMES for e in full)
    assert not (tmp_path / "full.json.partial.jsonl").exists()

    # Kill a second run once it has detected some, but not all, frames.
    resumed = str(tmp_path / "resumed.json")
    partial = tmp_path / "resumed.json.partial.jsonl"
    run = _cli(*common, "--json", resumed)
    deadline = time.time() + 600
    while time.time() < deadline and run.poll() is None:
        if partial.exists() and len(partial.read_text().splitlines()) >= 6:
            break
        time.sleep(0.02)
    assert run.poll() is None, "the run ended before it could be killed"
    run.send_signal(signal.SIGKILL)
    run.communicate()
    done = len(partial.read_text().splitlines())
    assert 6 <= done < FRAMES and not os.path.exists(resumed)

    run = _cli(*common, "--json", resumed, "--quiet")
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["detected_frames"] <= FRAMES - (done - done % 2)
    assert json.load(open(resumed)) == full
    assert np.isfinite([e["score"] for e in full]).all()
