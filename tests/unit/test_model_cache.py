"""The model cache against real files: hashes are checked on every way in."""

import shutil

import pytest

from facesearch.errors import ModelUnavailable
from facesearch.models.cache import ModelCache, sha256_file
from facesearch.models.registry import SFACE, YUNET, ModelSpec, UrlSource


@pytest.fixture(scope="module")
def fetched(cache_dir):
    """The real, verified model files (fetched from their sources if missing)."""
    cache = ModelCache(cache_dir / "models")
    return {spec.name: cache.ensure(spec) for spec in (YUNET, SFACE)}


def test_fetched_files_match_their_pinned_hashes(fetched):
    assert sha256_file(fetched[YUNET.name]) == YUNET.sha256
    assert sha256_file(fetched[SFACE.name]) == SFACE.derived.sha256


def test_the_fp32_fold_is_deterministic(fetched, tmp_path):
    from facesearch.models.convert import fold_to_fp32

    original = fetched[SFACE.name].parent / SFACE.file
    fold_to_fp32(original, tmp_path / "again.onnx")
    assert sha256_file(tmp_path / "again.onnx") == SFACE.derived.sha256


def test_import_from_a_file_verifies_it(fetched, tmp_path):
    cache = ModelCache(tmp_path / "models")
    cache.fetch(YUNET, from_file=fetched[YUNET.name])
    assert cache.is_installed(YUNET)
    wrong = tmp_path / "wrong.onnx"
    wrong.write_bytes(b"not the model")
    with pytest.raises(ModelUnavailable, match="sha256"):
        cache.fetch(YUNET, from_file=wrong)


def test_a_corrupted_cache_file_is_noticed_and_replaced(fetched, tmp_path):
    cache = ModelCache(tmp_path / "models")
    cache.fetch(YUNET, from_file=fetched[YUNET.name])
    with cache.path(YUNET).open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    assert not cache.is_installed(YUNET)
    # Re-importing a good copy repairs it; a fetch would do the same from the sources.
    cache.fetch(YUNET, from_file=fetched[YUNET.name])
    assert cache.is_installed(YUNET)


def test_when_no_source_works_the_error_lists_what_was_tried(tmp_path):
    unreachable = ModelSpec(
        name="nothing", task="detect", version="0", file="nothing.onnx", sha256="0" * 64,
        size=1, licence="none", input_format="none",
        sources=(UrlSource("http://127.0.0.1:9/nothing.onnx"),
                 UrlSource("http://127.0.0.1:9/mirror/nothing.onnx")),
    )  # fmt: skip
    with pytest.raises(ModelUnavailable) as caught:
        ModelCache(tmp_path / "models").fetch(unreachable)
    message = str(caught.value)
    assert "127.0.0.1:9/nothing.onnx" in message and "mirror/nothing.onnx" in message
    assert "--from" in message
    assert not any((tmp_path / "models" / "nothing").iterdir())


def test_a_source_with_the_wrong_bytes_is_rejected(fetched, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(fetched[YUNET.name], served / "model.onnx")
    impostor = ModelSpec(
        name="impostor", task="detect", version="0", file="model.onnx", sha256="1" * 64,
        size=YUNET.size, licence="none", input_format="none",
        sources=(UrlSource((served / "model.onnx").as_uri()),),
    )  # fmt: skip
    with pytest.raises(ModelUnavailable, match="expected 1111"):
        ModelCache(tmp_path / "models").fetch(impostor)
