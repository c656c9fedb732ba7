"""Video files in and out with cv2: frames streamed one at a time, RGB on our side.

cv2 decodes and encodes BGR; these functions convert so that callers (and detect()) only see
[H, W, 3] uint8 RGB frames.
"""

import os
from collections import namedtuple

__all__ = ["VideoInfo", "video_info", "read_frames", "batched", "VideoWriter"]

VideoInfo = namedtuple("VideoInfo", ["width", "height", "fps", "frame_count"])


def _open(path):
    import cv2

    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file not found: {path}")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"cannot open video {path} (not a video, or a codec cv2 lacks)")
    return capture


def video_info(path):
    """VideoInfo(width, height, fps, frame_count) from the container's header. frame_count may
    be an estimate (0 when unknown); read_frames gives the true frames."""
    import cv2

    capture = _open(path)
    try:
        return VideoInfo(int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         float(capture.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0,
                         max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0))
    finally:
        capture.release()


def read_frames(path):
    """Yields the frames of a video one by one as [H, W, 3] uint8 RGB arrays."""
    capture = _open(path)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame[..., ::-1].copy()
    finally:
        capture.release()


def batched(iterable, n):
    """Lists of up to n consecutive items (the last may be shorter)."""
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


class VideoWriter:
    """Writes RGB frames to a video file (cv2.VideoWriter, mp4v by default).

    path: output file (its directory is created); fps; size: (width, height);
    fourcc: four-character codec code ("mp4v" for .mp4, "MJPG" for .avi, ...).
    """

    def __init__(self, path, fps, size, fourcc="mp4v"):
        import cv2

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.size = tuple(int(s) for s in size)
        self._writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), float(fps),
                                       self.size)
        if not self._writer.isOpened():
            raise ValueError(f"cannot write video {path} with codec {fourcc!r}")
        self.frames = 0

    def write(self, frame):
        """frame: [H, W, 3] uint8 RGB with (W, H) == size."""
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError(f"frame {self.frames} is {frame.shape[1]}x{frame.shape[0]}, the "
                             f"video {self.path} is {self.size[0]}x{self.size[1]}")
        self._writer.write(frame[..., ::-1].copy())
        self.frames += 1

    def close(self):
        self._writer.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
