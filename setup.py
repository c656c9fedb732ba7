"""Installs the mrcnn package; runtime requirements come from requirements.txt."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements():
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


setup(
    name="mrcnn-keras3",  # the import name is mrcnn; "mrcnn" on PyPI is an unrelated project
    version="0.1.0",
    description="Mask R-CNN for object detection and instance segmentation on TensorFlow 2 + "
                "Keras 3",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["mrcnn", "mrcnn.*"]),
    python_requires=">=3.9",
    install_requires=read_requirements(),
    # torch and torchvision only for the torchvision parity test (never a runtime dependency).
    extras_require={"test": ["pytest>=7", "ruff>=0.5", "nbclient>=0.7", "nbformat>=5",
                             "ipykernel>=6", "torch==2.14.1", "torchvision==0.29.1"]},
)
