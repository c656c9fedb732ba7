"""mrcnn: Mask R-CNN on TensorFlow 2 + Keras 3 with matterport's public API.

    from mrcnn import model as modellib, utils, visualize
    from mrcnn.config import Config

Importing mrcnn itself is light: TensorFlow loads with mrcnn.model, matplotlib with visualize.
"""

import os

# The graph is written for the TensorFlow backend of Keras 3.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
