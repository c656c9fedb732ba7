"""Batch inference over many image files, resumable, writing COCO-format results.

    python -m mrcnn.batch_inference --config samples.shapes.train:ShapesInferenceConfig \\
        --weights logs/shapes.../mask_rcnn_shapes_0007.h5 --input images/ --output results.json

Images are decoded by a tf.data pipeline (in parallel, prefetched) while the model runs.
Progress is appended to <output>.partial.jsonl, one line per finished image, flushed as it
goes; a rerun skips the images already there (a line cut off by a kill is ignored and redone).
The final <output> (written atomically) is {"images": [{"id", "file_name", "height",
"width"}], "annotations": [COCO results with RLE masks]}, image ids following the sorted file
order, so an interrupted and resumed run writes the same file as an uninterrupted one.
"""

import argparse
import importlib
import json
import os

__all__ = ["list_images", "run_batch_inference", "main"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def list_images(source):
    """Sorted image paths of a directory, or the paths listed (one per line) in a text file,
    or an explicit list."""
    if isinstance(source, (list, tuple)):
        return [str(p) for p in source]
    if os.path.isdir(source):
        return sorted(os.path.join(source, f) for f in os.listdir(source)
                      if f.lower().endswith(IMAGE_EXTENSIONS))
    with open(source) as f:
        return [line.strip() for line in f if line.strip()]


def _read_partial(path):
    done = {}
    if not os.path.isfile(path):
        return done
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut off by an interruption: that image is redone
            done[record["file_name"]] = record
    return done


def _dataset(paths):
    import tensorflow as tf

    def load(path):
        data = tf.io.read_file(path)
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        return path, tf.cast(image, tf.uint8)

    return tf.data.Dataset.from_tensor_slices(paths).map(
        load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(4)


def run_batch_inference(model, paths, output, category_ids=None, stop_after=None, verbose=1):
    """Detects objects in every image and writes COCO results to `output` (see module doc).

    model: an inference MaskRCNN. category_ids: maps the model's class ids to result
    category ids (default: the class id). stop_after: process at most this many new images,
    then return without writing `output` (used to test resuming). Returns the output path, or
    None when stopped early.
    """
    import keras

    from mrcnn.evaluation import detections_to_coco

    paths = list_images(paths)
    partial = output + ".partial.jsonl"
    done = _read_partial(partial)
    if os.path.isfile(partial):
        # Keep only complete records, so that new lines never follow a cut-off one.
        with open(partial + ".tmp", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in done.values())
        os.replace(partial + ".tmp", partial)
    todo = [p for p in paths if p not in done]
    if verbose:
        print(f"{len(paths)} images, {len(done)} already done, {len(todo)} to go")
    def category_of(class_id):
        return category_ids[class_id] if category_ids is not None else class_id

    bar = keras.utils.Progbar(len(todo), unit_name="image") if verbose and todo else None
    processed = 0
    if todo:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(partial, "a") as f:
            for path, image in _dataset(todo):
                if stop_after is not None and processed >= stop_after:
                    return None
                path = path.numpy().decode()
                image = image.numpy()
                r = model.detect([image])[0]
                record = {"file_name": path, "height": int(image.shape[0]),
                          "width": int(image.shape[1]),
                          "results": detections_to_coco(None, 0, r, category_of)}
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
                processed += 1
                if bar:
                    bar.update(processed)
    done = _read_partial(partial)
    images, annotations = [], []
    for image_id, path in enumerate(paths):
        record = done[path]
        images.append({"id": image_id, "file_name": path, "height": record["height"],
                       "width": record["width"]})
        for result in record["results"]:
            annotations.append(dict(result, image_id=image_id))
    tmp = output + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"images": images, "annotations": annotations}, f)
    os.replace(tmp, output)
    os.remove(partial)
    return output


def _load_config(spec):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)()


def main(argv=None):
    p = argparse.ArgumentParser(description="Resumable batch inference to COCO results JSON.")
    p.add_argument("--config", required=True, help="module:ConfigClass (an inference config)")
    p.add_argument("--weights", required=True)
    p.add_argument("--input", required=True, help="a directory of images or a file of paths")
    p.add_argument("--output", required=True)
    p.add_argument("--logs", default="logs")
    args = p.parse_args(argv)
    from mrcnn import model as modellib

    config = _load_config(args.config)
    model = modellib.MaskRCNN("inference", config, args.logs)
    model.load_weights(args.weights, by_name=True)
    out = run_batch_inference(model, args.input, args.output)
    print(out)
    return out


if __name__ == "__main__":
    main()
