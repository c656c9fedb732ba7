"""The learning curve of a training run: losses and validation mAP per epoch, as JSON and a PNG.

    curve = LearningCurve(inference_model, val_dataset, checkpoint_template)
    model.train(..., custom_callbacks=[curve])
    curve.save("results/balloon/curve")  # curve.json and curve.png

At the end of each epoch the callback records Keras' logs (loss, val_loss and the five losses of
each) and, every `every` epochs, loads that epoch's checkpoint into an inference model and runs
mrcnn.evaluation.evaluate_dataset on the validation images (mask and box mAP@0.5). TensorBoard
scalars are written by MaskRCNN.train itself; this adds the mAP and a picture.
"""

import json
import os
import time

import keras

__all__ = ["LearningCurve", "plot_learning_curve", "read_curve"]


def read_curve(path, up_to_epoch):
    """Entries of a curve JSON written by LearningCurve with epoch <= up_to_epoch ([] when the
    file does not exist): the earlier part of a run resumed with --weights last."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [e for e in json.load(f) if e.get("epoch", 0) <= up_to_epoch]


class LearningCurve(keras.callbacks.Callback):
    """Keras callback recording per-epoch losses and validation mAP@0.5.

    inference_model: a MaskRCNN in inference mode with the training model's architecture.
    val_dataset: a prepared Dataset to evaluate on (None: losses only).
    checkpoint_template: the training model's checkpoint_path ('...{epoch:04d}.h5'); MaskRCNN's
        checkpoint callback runs first and writes the file this one loads.
    every: evaluate every this many epochs (and always at the last epoch of a train() call).
    limit: evaluate on the first `limit` validation images only (0: all).
    stem: when given, <stem>.json and <stem>.png are rewritten after every epoch, so that an
        interrupted run keeps its curve. initial: entries of earlier epochs (a resumed run).
    """

    def __init__(self, inference_model, val_dataset, checkpoint_template, every=1, limit=0,
                 stem=None, initial=None, title=None):
        super().__init__()
        self.stem = stem
        self.title = title
        self.inference_model = inference_model
        self.val_dataset = val_dataset
        self.checkpoint_template = checkpoint_template
        self.every = max(int(every), 1)
        self.limit = limit
        self.epochs = list(initial or [])
        self._started = time.time()
        self._last_epoch = None

    def on_train_begin(self, logs=None):
        self._last_epoch = self.params.get("epochs") if self.params else None

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1, "seconds": round(time.time() - self._started, 1)}
        entry.update({k: float(v) for k, v in (logs or {}).items()
                      if isinstance(v, (int, float)) or hasattr(v, "__float__")})
        last = self._last_epoch is not None and epoch + 1 >= self._last_epoch
        if self.val_dataset is not None and ((epoch + 1) % self.every == 0 or last):
            from mrcnn.evaluation import evaluate_dataset

            self.inference_model.load_weights(self.checkpoint_template.format(epoch=epoch + 1),
                                              by_name=True, verbose=0)
            m = evaluate_dataset(self.inference_model, self.val_dataset, limit=self.limit,
                                 verbose=0)
            entry["val_mask_mAP50"] = m["mask_mAP50"]
            entry["val_bbox_mAP50"] = m["bbox_mAP50"]
            print(f"\nepoch {epoch + 1}: val mask mAP@0.5 {m['mask_mAP50']:.3f}, "
                  f"box mAP@0.5 {m['bbox_mAP50']:.3f} ({m['images']} images, "
                  f"{m['seconds']:.0f} s)", flush=True)
        self.epochs = [e for e in self.epochs if e["epoch"] != entry["epoch"]] + [entry]
        if self.stem:
            self.save(self.stem, self.title)

    def save(self, stem, title=None):
        """Writes <stem>.json (the per-epoch entries) and <stem>.png; returns both paths."""
        title = title or self.title
        os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
        with open(stem + ".json", "w") as f:
            json.dump(self.epochs, f, indent=1)
        plot_learning_curve(self.epochs, stem + ".png", title=title)
        return stem + ".json", stem + ".png"


def plot_learning_curve(epochs, path, title=None):
    """Plots train/val loss (left axis) and val mask/box mAP@0.5 (right axis) per epoch.

    epochs: list of dicts with 'epoch' and any of 'loss', 'val_loss', 'val_mask_mAP50',
    'val_bbox_mAP50'. Writes a PNG to path.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot(1, 1, 1)
    for key, style in (("loss", "-"), ("val_loss", "--")):
        pts = [(e["epoch"], e[key]) for e in epochs if key in e]
        if pts:
            ax.plot(*zip(*pts), style, color="tab:blue", label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss", color="tab:blue")
    ax.set_yscale("log")
    ax2 = ax.twinx()
    for key, color, label in (("val_mask_mAP50", "tab:red", "val mask mAP@0.5"),
                              ("val_bbox_mAP50", "tab:orange", "val box mAP@0.5")):
        pts = [(e["epoch"], e[key]) for e in epochs if key in e]
        if pts:
            ax2.plot(*zip(*pts), "o-", color=color, label=label, markersize=3)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("mAP@0.5", color="tab:red")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="center right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
