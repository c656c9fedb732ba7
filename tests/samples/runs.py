"""Running a sample's train.py in-process, as the seeded end-to-end tests do."""

import json
import os


def run_sample(train_module, args, tmp_path, capsys, steps):
    """train_module.main(args) with --logs and --out under tmp_path. Checks that the last line
    printed is <out>/metrics.json, that the file holds the returned summary's figures, the
    step count and an existing picture; returns the saved dict."""
    summary = train_module.main(args + ["--logs", str(tmp_path / "logs"),
                                        "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == str(tmp_path / "out" / "metrics.json")
    with open(out[-1]) as f:
        saved = json.load(f)
    assert saved["mask_mAP50"] == summary["mask_mAP50"]
    assert saved["steps"] == steps and os.path.isfile(saved["picture"])
    return saved
