"""The one seam between model code and the runtimes that execute ONNX graphs.

OpenCV's DNN module is the default: on 2 CPU cores it ran SFace about twice
as fast as onnxruntime (bench/results/). onnxruntime stays available for
models OpenCV cannot run, and is imported only when asked for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

log = logging.getLogger(__name__)

# OpenCV 5 warns on every model load that its new graph engine ignores the
# target setting; that is expected on CPU and only noise to a user.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

Runtime = Literal["opencv", "onnxruntime"]


class ModelSession(Protocol):
    def run(self, batch: np.ndarray) -> np.ndarray:
        """One forward pass: an NCHW float32 batch in, the first output out."""
        ...


class OpenCvSession:
    def __init__(self, path: Path) -> None:
        self.net = cv2.dnn.readNetFromONNX(str(path))

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.net.setInput(batch)
        return np.asarray(self.net.forward())


class OrtSession:
    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        providers = [p for p in ort.get_available_providers() if p != "TensorrtExecutionProvider"]
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        log.info("onnxruntime session for %s on %s", path.name, self.session.get_providers())

    def run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: batch})[0])


def open_session(path: Path, runtime: Runtime = "opencv", threads: int = 0) -> ModelSession:
    if runtime == "onnxruntime":
        return OrtSession(path, threads)
    return OpenCvSession(path)
