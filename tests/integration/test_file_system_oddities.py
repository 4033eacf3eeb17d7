"""File-system oddities (issue 18): a real tree made to be difficult, ingested.

Every oddity is recorded as an error for its path, with the reason, and the walk goes
on to the good photos: symbolic-link loops, dangling links, links out of the folder,
FIFOs, sockets and devices (never opened: a FIFO would block), folders without read
permission, files that vanish or change between listing and reading, names that are
not UTF-8, trees deeper than the system's path limit, and manifest lines naming any
of these. The hostile *contents* are in test_hostile_corpus.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from linkfarm import place

from facesearch.engine import Engine
from facesearch.pipeline.sources import iter_sources

FACE = ("Aaron_Eckhart", "Aaron_Eckhart_0001.jpg")
OTHER_FACE = ("Abdullah_Gul", "Abdullah_Gul_0001.jpg")
DEEP = 200  # folders in the deep chain
LONG_NAME = "d" * 200  # 25 of these make a path beyond PATH_MAX (4096)


@dataclass
class Tree:
    root: Path
    good: set[str] = field(default_factory=set)  # names of the photos that must be stored
    # path as recorded (relative to root, bytes that are not UTF-8 as \xNN) -> phrase
    # its recorded reason must contain
    odd: dict[str, str] = field(default_factory=dict)


def build_tree(base: Path, lfw: Path, held: list[socket.socket]) -> Tree:
    """The oddities beside good photos, inside `base/tree`; `base/outside` is elsewhere."""
    root, outside = base / "tree", base / "outside"
    for folder in (root / "good" / "sub", outside / "folder"):
        folder.mkdir(parents=True)
    tree = Tree(root)

    def good(relative: str, photo: tuple[str, str] = FACE) -> None:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        place(lfw.joinpath(*photo), target)
        tree.good.add(relative)

    good("good/a.jpg")
    good("good/sub/b.jpg", OTHER_FACE)
    place(lfw.joinpath(*FACE), outside / "x.jpg")

    (root / "self.jpg").symlink_to("self.jpg")
    tree.odd["self.jpg"] = "symbolic link loop"
    (root / "ping.jpg").symlink_to("pong.jpg")
    (root / "pong.jpg").symlink_to("ping.jpg")
    tree.odd["ping.jpg"] = tree.odd["pong.jpg"] = "symbolic link loop"
    (root / "dangling.jpg").symlink_to("nowhere/missing.jpg")
    tree.odd["dangling.jpg"] = "dangling link"
    (root / "out.jpg").symlink_to(outside / "x.jpg")
    tree.odd["out.jpg"] = "links may not leave the folder"
    (root / "out-folder").symlink_to(outside / "folder")
    tree.odd["out-folder"] = "links may not leave the folder"
    # Links that stay inside: a file is taken (as a duplicate of its target), a folder
    # (here an ancestor: a cycle for a walk that followed it) is walked under its own name.
    (root / "good" / "inside.jpg").symlink_to("a.jpg")
    (root / "good" / "sub" / "up").symlink_to("../..")

    os.mkfifo(root / "fifo.jpg")
    tree.odd["fifo.jpg"] = "FIFO"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(root / "socket.jpg"))
    held.append(server)
    tree.odd["socket.jpg"] = "socket"
    with contextlib.suppress(PermissionError):  # no CAP_MKNOD in some containers
        os.mknod(root / "device.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null
        tree.odd["device.jpg"] = "character device"

    raw = os.fsencode(root)
    with open(raw + b"/\xff.jpg", "wb") as f:
        f.write(lfw.joinpath(*FACE).read_bytes())
    tree.odd["\\xff.jpg"] = "not valid UTF-8"
    os.mkdir(raw + b"/\xfe-folder")
    with open(raw + b"/\xfe-folder/inside.jpg", "wb") as f:
        f.write(lfw.joinpath(*FACE).read_bytes())
    tree.odd["\\xfe-folder"] = "not valid UTF-8"

    deep = root / "deep"
    for n in range(DEEP):
        deep /= f"{n:03d}"
    good(str((deep / "bottom.jpg").relative_to(root)))
    tree.odd[_make_too_long(root / "long", lfw.joinpath(*FACE))] = "too long"
    return tree


def _make_too_long(start: Path, photo: Path) -> str:
    """A chain of folders whose path passes PATH_MAX, made through folder descriptors
    (a path that long cannot be named whole); returns the first folder whose path is
    too long, relative to start's parent."""
    start.mkdir()
    fd = os.open(start, os.O_RDONLY | os.O_DIRECTORY)
    length, names = len(os.fsencode(start)), []
    try:
        while length <= 4096 + 300:
            os.mkdir(LONG_NAME, dir_fd=fd)
            inner = os.open(LONG_NAME, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd, length = inner, length + 1 + len(LONG_NAME)
            names.append(LONG_NAME)
        out = os.open("deepest.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, photo.read_bytes())
        os.close(out)
    finally:
        os.close(fd)
    # The walk lists a folder until its own path is too long for the system.
    parts, size = [start.name], len(os.fsencode(start))
    for name in names:
        parts.append(name)
        size += 1 + len(name)
        if size >= 4096:
            break
    return "/".join(parts)


@pytest.fixture
def tree(tmp_path, lfw):
    held: list[socket.socket] = []
    built = build_tree(tmp_path, lfw, held)
    yield built
    for server in held:
        server.close()
    # pytest's clean-up removes the chain beyond PATH_MAX: rmtree works through folder
    # descriptors on Linux.


def _relative(path: str, root: Path) -> str:
    return os.path.relpath(path, root)


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail, rather than hang, if the ingest blocks: a FIFO opened for reading waits
    for a writer for ever, and SIGALRM interrupts that wait."""

    def expired(signum, frame):
        raise AssertionError(f"ingest still blocked after {seconds} s (was a FIFO opened?)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_every_oddity_is_a_recorded_error_and_every_good_photo_is_stored(engine, tree):
    engine.create_collection("odd", "a difficult folder", "test")
    with _deadline(300):
        report = engine.ingest([tree.root], "odd")
    errors = {
        _relative(e["path"], tree.root): e["reason"] for e in engine.catalog.errors(limit=500)
    }
    assert errors.keys() == tree.odd.keys(), errors
    for path, phrase in tree.odd.items():
        assert phrase in errors[path], (path, errors[path])
    stored = {_relative(i["path"], tree.root) for i in engine.catalog.images(limit=500)}
    # The first photo is there three times (deep at the bottom, in good/, and linked):
    # stored once, from where the walk met it first.
    assert len(stored) == 2 and stored <= tree.good and "good/sub/b.jpg" in stored
    assert report.images == 2 and report.faces >= 2
    assert report.errors == len(tree.odd) and report.duplicates == len(tree.good) - 2 + 1
    assert report.status == "finished"


def test_the_cli_records_the_oddities_and_never_shows_a_traceback(tree, tmp_path, cache_dir):
    base = [sys.executable, "-m", "facesearch", "--data-dir", str(tmp_path / "data"),
            "--cache-dir", str(cache_dir), "--workers", "1"]  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=300)
        assert "Traceback" not in done.stderr + done.stdout, done.stderr
        return done

    run("collections", "create", "odd", "--source", "a difficult folder", "--legal-basis", "t")
    ingested = run("ingest", str(tree.root), "--collection", "odd", "--json")
    assert ingested.returncode == 0, ingested.stderr
    summary = json.loads(ingested.stdout)
    assert (summary["status"], summary["images_added"], summary["errors"]) == (
        "finished", 2, len(tree.odd),
    )  # fmt: skip
    listed = json.loads(run("errors", "list", "--collection", "odd", "--json").stdout)
    assert {_relative(e["path"], tree.root) for e in listed} == tree.odd.keys()


def test_a_file_that_vanishes_or_changes_after_listing_is_an_error(
    settings, analyzer, lfw, tmp_path
):
    """Files are listed first and read later; here they are changed in between, from the
    progress report of the first stored file (one file per batch)."""
    folder, outside = tmp_path / "in", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    photos = sorted(lfw.glob("B*/*_0001.jpg"))[:6]
    names = [f"{n}.jpg" for n in range(6)]
    for photo, name in zip(photos, names, strict=True):
        shutil.copyfile(photo, folder / name)  # copies: these files are changed
    shutil.copyfile(photos[0], outside / "x.jpg")

    def change() -> None:
        (folder / "1.jpg").unlink()
        (folder / "2.jpg").unlink()
        os.mkfifo(folder / "2.jpg")
        (folder / "3.jpg").unlink()
        (folder / "3.jpg").symlink_to(outside / "x.jpg")
        (folder / "4.jpg").unlink()
        (folder / "4.jpg").mkdir()

    changed: list[bool] = []

    def progress(report) -> None:
        if not changed:
            change()
            changed.append(True)

    one_per_batch = settings.model_copy(update={"batch_images": 1})
    with Engine(one_per_batch, analyzer=analyzer) as engine:
        engine.create_collection("c", "test", "test")
        with _deadline(300):
            report = engine.ingest([folder], "c", progress)
        errors = {Path(e["path"]).name: e["reason"] for e in engine.catalog.errors()}
        stored = {Path(i["path"]).name for i in engine.catalog.images()}
    assert stored == {"0.jpg", "5.jpg"}
    assert "vanished after it was listed" in errors["1.jpg"]
    assert "is now a FIFO" in errors["2.jpg"] and "not opened" in errors["2.jpg"]
    assert "is now a symbolic link" in errors["3.jpg"]
    assert "is now a folder" in errors["4.jpg"]
    assert (report.images, report.errors, report.status) == (2, 4, "finished")


def test_manifest_lines_naming_oddities_are_errors_with_their_line(engine, tree, tmp_path):
    manifest = tmp_path / "list.jsonl"
    lines = [
        "good/a.jpg", "fifo.jpg", "socket.jpg", "self.jpg", "dangling.jpg", "good",
        "not-there.jpg", "good/sub/b.jpg", "\udcff.jpg",
    ]  # fmt: skip
    manifest.write_text("".join(json.dumps({"path": str(tree.root / p)}) + "\n" for p in lines))
    engine.create_collection("m", "a manifest", "test")
    with _deadline(300):
        report = engine.ingest([manifest], "m")
    reasons = [e["reason"] for e in engine.catalog.errors(limit=50)]
    assert len(reasons) == 7 and report.errors == 7 and report.images == 2
    for line, phrase in (
        (2, "FIFO"), (3, "socket"), (4, "symbolic link loop"), (5, "dangling link"),
        (6, "a folder, not a file"), (7, "does not exist"), (9, "not valid UTF-8"),
    ):  # fmt: skip
        assert any(r.startswith(f"{manifest}:{line}: ") and phrase in r for r in reasons), (
            line, reasons,
        )  # fmt: skip


def test_a_folder_without_read_permission_is_an_error_and_the_walk_goes_on(lfw):
    """Tests run as root, which reads any folder; the walk is then run in a child
    process that gives up root for 'nobody', over a tree outside pytest's private
    temporary folder (which nobody cannot enter)."""
    base = Path(tempfile.mkdtemp(prefix="facesearch-locked-"))
    try:
        os.chmod(base, 0o755)
        for name in ("a", "locked", "z"):
            (base / name).mkdir()
            shutil.copyfile(lfw.joinpath(*FACE), base / name / "photo.jpg")
        os.chmod(base / "locked", 0o000)
        items = _walk_unprivileged(base)
    finally:
        os.chmod(base / "locked", 0o755)
        shutil.rmtree(base)
    assert [(Path(p).relative_to(base).as_posix(), r) for p, r in items] == [
        ("a/photo.jpg", None),
        ("locked", "cannot list this folder (permission denied); nothing in it was read"),
        ("z/photo.jpg", None),
    ]


def _walk_unprivileged(base: Path) -> list[tuple[str, str | None]]:
    try:
        os.listdir(base / "locked")
    except PermissionError:  # this user really cannot read it: no need to change user
        return [(str(i.path), i.refused) for i in iter_sources([base])]
    if os.geteuid() != 0:
        pytest.skip("the folder is readable and this user cannot switch to 'nobody'")
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: no pytest machinery, only the walk, then _exit
        code = 1
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            found = [(str(i.path), i.refused) for i in iter_sources([base])]
            os.write(writer, json.dumps(found).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        pytest.skip("cannot switch to the user 'nobody' (uid 65534) here")
    return [tuple(pair) for pair in json.loads(data)]


def test_a_server_job_records_the_oddities_and_links_stay_inside_the_allowed_roots(
    world, tree, lfw
):  # fmt: skip
    from apiworld import wait_for_job

    client, investigator = world.client, world.as_("investigator")
    root = world.settings.api.allowed_roots[0]
    # The tree is moved under the allowed root; its `outside` stays outside.
    inside = root / "odd"
    os.rename(tree.root, inside)
    try:
        manifest = root / "odd.csv"
        outside_photo = tree.root.parent / "outside" / "x.jpg"
        manifest.write_text(
            f"path\n{inside / 'good' / 'a.jpg'}\n{outside_photo}\n{inside / 'fifo.jpg'}\n"
        )
        client.post("/api/collections", headers=world.as_("administrator"),
                    json={"name": "odd", "source": "server", "legal_basis": "test"})  # fmt: skip
        loop = client.post(
            "/api/jobs", headers=investigator,
            json={"collection": "odd", "paths": [str(inside / "self.jpg")]},
        )  # fmt: skip
        assert loop.status_code == 202, loop.text  # taken, and refused in the job's errors
        assert wait_for_job(client, loop.json()["id"], investigator)["errors"] == 1
        job = client.post(
            "/api/jobs", headers=investigator,
            json={"collection": "odd", "paths": [str(inside), str(manifest)]},
        )  # fmt: skip
        assert job.status_code == 202, job.text
        done = wait_for_job(client, job.json()["id"], investigator, timeout=300)
        assert (done["status"], done["images"]) == ("finished", 2), done
        assert done["errors"] == len(tree.odd) + 2
        engine = world.services.engine
        collection = engine.catalog.collection("odd")
        reasons = {e["path"]: e["reason"] for e in engine.catalog.errors(collection, 500)}
        assert "outside the folders allowed for ingest" in reasons[str(outside_photo)]
        assert "FIFO" in reasons[str(inside / "fifo.jpg")]
        assert "links may not leave" in reasons[str(inside / "out.jpg")]
    finally:
        os.rename(inside, tree.root)


@pytest.mark.slow
def test_an_ingest_on_ray_records_the_oddities_from_its_driver(tree, tmp_path, cache_dir):
    """On a Ray cluster the driver reads the files: the same walk, the same refusals."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    from raycluster import ClusterUnavailable, RayCluster

    base = [sys.executable, "-m", "facesearch", "--data-dir", str(tmp_path / "data"),
            "--cache-dir", str(cache_dir)]  # fmt: skip
    created = subprocess.run(
        [*base, "collections", "create", "odd", "--source", "s", "--legal-basis", "t"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    try:
        cluster = RayCluster(workers=1).start()
    except ClusterUnavailable as exc:
        pytest.skip(f"no Ray cluster here: {exc}")
    try:
        driver = cluster.exec(
            cluster.head,
            [*base, "ingest", str(tree.root), "--collection", "odd", "--ray", cluster.address,
             "--json"],
            env={"FACESEARCH_RAY__NODE_IP": cluster.head.address},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            out, err = driver.communicate(timeout=600)  # a FIFO opened would block for ever
        finally:
            if driver.poll() is None:
                driver.kill()
    finally:
        cluster.stop()
    assert driver.returncode == 0 and "Traceback" not in err, err[-3000:]
    summary = json.loads(out)
    assert (summary["status"], summary["images_added"], summary["errors"]) == (
        "finished", 2, len(tree.odd),
    )  # fmt: skip
