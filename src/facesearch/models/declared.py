"""Recognisers an operator declares by file: checked at start, then registered.

A declared model is used where it lies and is never downloaded or copied. Before
anything else starts (and so before the catalog is opened), its file must exist,
hash to the declared sha256, parse as an ONNX graph and take a 3-channel square
input of the declared crop size; otherwise start is refused with a message that
says which check failed.
"""

from __future__ import annotations

from pathlib import Path

from ..config import DeclaredModel, Settings
from ..errors import ModelUnavailable
from .cache import sha256_file
from .registry import MODELS, InputLayout, LocalSource, ModelSpec, register

# (path, size, mtime) → sha256 already verified in this process: search servers and
# workers build engines often, and hashing a 170 MB file each time is wasted.
_verified: dict[tuple[str, int, int], str] = {}


def install(settings: Settings) -> list[ModelSpec]:
    """Check and register every declared model of `settings`."""
    return [register_declared(d) for d in settings.declared_models]


def register_declared(declared: DeclaredModel) -> ModelSpec:
    known = MODELS.get(declared.name)
    if (
        known is not None
        and known.declared_path == str(declared.path)
        and known.sha256 == declared.sha256
        and _still_verified(declared.path, declared.sha256)
    ):
        return known
    spec = check(declared)
    register(spec)
    return spec


def check(declared: DeclaredModel) -> ModelSpec:
    """The registry entry of a declared model, or ModelUnavailable saying what is wrong."""
    path = declared.path.expanduser()
    prefix = f"declared model {declared.name!r} ({path})"
    if not path.is_file():
        raise ModelUnavailable(f"{prefix}: no such file")
    digest = sha256_file(path)
    if digest != declared.sha256:
        raise ModelUnavailable(
            f"{prefix}: its sha256 is {digest}, but {declared.sha256} was declared; "
            "refusing to use a file that is not the one declared"
        )
    _check_graph(path, declared, prefix)
    stat = path.stat()
    _verified[(str(path), stat.st_size, stat.st_mtime_ns)] = digest
    layout = InputLayout(
        crop_size=declared.crop_size, template="arcface5", colour=declared.colour,
        mean=declared.mean, scale=declared.scale, runtime=declared.runtime,
    )  # fmt: skip
    return ModelSpec(
        name=declared.name,
        task="embed",
        version=declared.version,
        file=path.name,
        sha256=digest,
        size=stat.st_size,
        licence=f"declared by the operator: {declared.licence}",
        input_format=layout.describe() + f"; output {declared.embedding_dim}-d",
        sources=(LocalSource(str(path)),),
        embedding_dim=declared.embedding_dim,
        layout=layout,
        declared_path=str(path),
        calibration_file=str(declared.calibration) if declared.calibration else None,
    )


def _still_verified(path: Path, sha256: str) -> bool:
    try:
        stat = path.stat()
    except OSError:
        return False
    return _verified.get((str(path), stat.st_size, stat.st_mtime_ns)) == sha256


def _check_graph(path: Path, declared: DeclaredModel, prefix: str) -> None:
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf and the checker raise many kinds
        raise ModelUnavailable(f"{prefix}: not a readable ONNX graph ({exc})") from None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelUnavailable(
            f"{prefix}: a recogniser takes one input tensor, this graph takes {len(inputs)}"
        )
    shape = _dims(inputs[0])
    size = declared.crop_size
    wanted = f"[batch, 3, {size}, {size}]"
    if (
        len(shape) != 4
        or shape[1] not in (3, None)
        or any(d not in (size, None) for d in shape[2:])
    ):
        raise ModelUnavailable(
            f"{prefix}: its input {inputs[0].name!r} has shape {_show(shape)}, "
            f"but a {declared.crop_size}-pixel crop needs {wanted}"
        )
    outputs = [_dims(o) for o in model.graph.output]
    if outputs and outputs[0] and outputs[0][-1] not in (declared.embedding_dim, None):
        raise ModelUnavailable(
            f"{prefix}: its output has shape {_show(outputs[0])}, but an embedding of "
            f"{declared.embedding_dim} values was declared"
        )


def _dims(value_info) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def _show(shape: list[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
