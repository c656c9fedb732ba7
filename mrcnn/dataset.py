"""Dataset: the base class users subclass to feed their own images and masks.

Usage, as with matterport::

    class MyDataset(Dataset):
        def load_my_data(self, ...):
            self.add_class("mine", 1, "cat")
            self.add_image("mine", image_id="a.jpg", path="/data/a.jpg")
        def load_mask(self, image_id):
            ...  # -> bool [height, width, instances], int32 class_ids [instances]

    ds = MyDataset(); ds.load_my_data(...); ds.prepare()

Internal class ids are sequential (0 is background); each source keeps its own ids, mapped with
map_source_class_id("source.id").
"""

import logging

import numpy as np

__all__ = ["Dataset", "ImageLoadError", "to_rgb_uint8"]

logger = logging.getLogger(__name__)


class ImageLoadError(ValueError):
    """An image could not be read or converted. The message names the file and image id."""


def to_rgb_uint8(image, channels=3, where="image"):
    """Converts grayscale, RGBA, 16-bit and float images to [height, width, channels] uint8.

    16-bit images are scaled by 255/65535; float images are taken as [0, 1] when their maximum is
    at most 1, else as [0, 255]. RGBA drops its alpha channel. `where` names the image in errors.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageLoadError(f"{where}: expected a 2-D or 3-D image, got shape {image.shape}")
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype == np.uint16 or (image.dtype.kind in "ui" and image.max(initial=0) > 255):
        image = np.round(image.astype(np.float64) * (255.0 / 65535.0))
    elif image.dtype.kind == "f":
        if not np.all(np.isfinite(image)):
            raise ImageLoadError(f"{where}: image has NaN or infinite values")
        image = image * 255.0 if image.max(initial=0) <= 1.0 else image
    image = np.clip(image, 0, 255).astype(np.uint8)
    c = image.shape[-1]
    if channels == 3:
        if c == 1:
            image = np.repeat(image, 3, axis=-1)
        elif c == 2:  # gray + alpha
            image = np.repeat(image[..., :1], 3, axis=-1)
        elif c >= 4:
            image = image[..., :3]
    elif c != channels:
        raise ImageLoadError(f"{where}: image has {c} channels, the config expects {channels}")
    return image


class Dataset:
    """The base class for dataset classes (matterport's utils.Dataset contract)."""

    def __init__(self, class_map=None):
        self._image_ids = []
        self.image_info = []
        # Background is always the first class.
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}
        # Keypoint names and skeleton (0-based pairs) of a keypoint dataset, if any.
        self.keypoint_names = None
        self.keypoint_skeleton = None

    def add_class(self, source, class_id, class_name):
        if "." in source:
            raise ValueError(f"Source name cannot contain a dot: {source!r}")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return  # already added
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        image_info = {"id": image_id, "source": source, "path": path}
        image_info.update(kwargs)
        self.image_info.append(image_info)

    def image_reference(self, image_id):
        """A link or description of the image, for debugging. Override in subclasses."""
        return ""

    def prepare(self, class_map=None):
        """Builds the internal id maps. Call it after adding classes and images."""

        def clean_name(name):
            return ",".join(name.split(",")[:1])

        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {f"{info['source']}.{info['id']}": cid
                                      for info, cid in zip(self.class_info, self.class_ids)}
        self.image_from_source_map = {f"{info['source']}.{info['id']}": iid
                                      for info, iid in zip(self.image_info, self.image_ids)}
        self.sources = sorted({i["source"] for i in self.class_info})
        self.source_class_ids = {}
        for source in self.sources:
            self.source_class_ids[source] = [
                i for i, info in enumerate(self.class_info)
                if i == 0 or source == info["source"]]

    def map_source_class_id(self, source_class_id):
        """'coco.12' -> the internal class id."""
        return self.class_from_source_map[source_class_id]

    def get_source_class_id(self, class_id, source):
        """Internal class id -> the id in the given source."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(f"class {class_id} belongs to source {info['source']!r}, "
                             f"not {source!r}")
        return info["id"]

    @property
    def image_ids(self):
        return self._image_ids

    def source_image_link(self, image_id):
        """The path or URL of the image."""
        return self.image_info[image_id]["path"]

    def _describe(self, image_id):
        try:
            info = self.image_info[image_id]
        except (IndexError, TypeError):
            return f"image_id {image_id}"
        return f"image_id {image_id} (source {info.get('source')!r}, id {info.get('id')!r})"

    def load_image(self, image_id):
        """Loads an image as [height, width, 3] uint8 RGB.

        Grayscale, RGBA and 16-bit files are converted. A missing or unreadable file raises
        ImageLoadError naming the file and the image id.
        """
        import os

        import skimage.io

        if not (0 <= int(image_id) < len(self.image_info)):
            raise IndexError(f"image_id {image_id} out of range: the dataset has "
                             f"{len(self.image_info)} images")
        path = self.image_info[image_id]["path"]
        where = f"{path} [{self._describe(image_id)}]"
        if not isinstance(path, str) or not os.path.isfile(path):
            raise ImageLoadError(f"image file not found: {where}")
        try:
            image = skimage.io.imread(path)
        except Exception as e:  # any decoder error: report which file
            raise ImageLoadError(f"cannot read image {where}: {e}") from e
        if getattr(image, "ndim", 0) == 3 and image.shape[0] in (3, 4) and image.shape[-1] > 4:
            image = np.moveaxis(image, 0, -1)  # channels-first TIFF
        return to_rgb_uint8(image, 3, where)

    def load_coco_json(self, annotation_json, image_dir, source="coco_json", class_ids=None):
        """Adds the categories and images of a COCO JSON file (as exported by CVAT, Label
        Studio, Roboflow, labelme2coco, ...); load_mask then decodes their polygons and RLE.

        annotation_json: the JSON path; image_dir: the folder its `file_name`s are relative
        to; source: the source name of these classes and images; class_ids: keep only these
        category ids. Category ids may be any integers: after prepare() they map to
        contiguous internal ids in file order (map_source_class_id(f"{source}.{id}")), with
        their names. Crowd annotations get negative class ids; images without annotations are
        kept. See mrcnn.coco_format. Returns the number of images added.
        """
        from mrcnn.coco_format import load_coco_json

        return load_coco_json(self, annotation_json, image_dir, source=source,
                              class_ids=class_ids)

    def load_mask(self, image_id):
        """Instance masks of an image. Override in subclasses.

        Returns masks: bool [height, width, instances] and class_ids: int32 [instances].
        Images added by load_coco_json are decoded from their COCO annotations. For other
        images this default has no instances: it warns and returns empty arrays.
        """
        from mrcnn.coco_format import COCO_FORMAT, instance_masks

        info = self.image_info[image_id] if 0 <= image_id < len(self.image_info) else {}
        if info.get("annotation_format") == COCO_FORMAT:
            return instance_masks(self, image_id)
        logger.warning("You are using the default load_mask(); define your own load_mask().")
        return np.empty([0, 0, 0], dtype=bool), np.empty([0], np.int32)

    def load_keypoints(self, image_id):
        """Keypoints of the instances load_mask returns, in the same order. Override in
        subclasses of keypoint datasets (Config.NUM_KEYPOINTS > 0).

        Returns float32 [instances, K, (x, y, v)]: continuous pixel coordinates (the centre of
        pixel column i is x = i + 0.5) and COCO's visibility (0 not labelled, 1 occluded,
        2 visible). Images added by load_coco_json from a file whose category lists
        `keypoints` (COCO person_keypoints, skeleton exports of CVAT or Label Studio) are
        decoded from their annotations (COCO's integer pixel indices + 0.5).
        """
        from mrcnn.coco_format import COCO_FORMAT, instance_keypoints

        info = self.image_info[image_id] if 0 <= image_id < len(self.image_info) else {}
        if info.get("annotation_format") == COCO_FORMAT and self.keypoint_names:
            return instance_keypoints(self, image_id, len(self.keypoint_names))
        raise NotImplementedError(
            f"{type(self).__name__} has no keypoints for {self._describe(image_id)}: a model "
            "with NUM_KEYPOINTS > 0 needs load_keypoints(image_id) in your Dataset subclass "
            "(or a COCO keypoint file loaded with load_coco_json)")
