"""The vectors file of a sealed index: AES-256-GCM per block of rows, memory-mapped.

Layout of `vectors-G.f32` (format 2), all integers little-endian:

- header, 64 bytes: magic `FSVGCM\\0\\2`, dim (u32), rows per block R (u32), a salt of
  32 random bytes drawn when the file is created, and a 16-byte HMAC-SHA256 over the
  first 48 bytes and the file name;
- two tail slots of fixed size, each `rows (u32) | nonce (12) | ciphertext | tag (16)`,
  holding the rows after the last full block (fewer than R);
- full blocks of R rows, block i at a fixed offset: `nonce (12) | ciphertext | tag (16)`.

Keys: HKDF-SHA256 of the index's row key, salted with the file's own salt and bound to
its name, gives the block key, the tail key and the header's MAC key. A file generation
(a compaction, a rebuild, the same name written again after the folder was deleted)
therefore never shares a key with another. A block's nonce is its index (4 bytes) and 8
random bytes, drawn afresh each time it is encrypted; a tail's is 12 random bytes under
the tail key. The additional data binds the file name, the header, the block index and
(for a tail) its first row and row count, so a block moved, swapped or cut is refused.

Full blocks are written once, past the committed length. The tail changes with every
append, so it is written into the slot the committed state does not use: a process
killed mid-write leaves the committed tail intact, as the manifest expects. A reader
maps the file and decrypts only the blocks it reads; a flipped bit anywhere in what the
manifest has committed fails its block's tag (or the header's MAC) and is reported as
`IndexDamaged`.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..diskfull import writing
from ..errors import FacesearchError
from .files import RowCipher, append, mapped, mapped_rows, vector_bytes

MAGIC = b"FSVGCM\x00\x02"
HEADER = 64
NONCE = 12
TAG = 16
# About a page of plaintext per block: a re-ranking that reads scattered rows decrypts
# one small block per candidate, an exact scan a few hundred per million rows.
BLOCK_BYTES = 4096
# Decrypted blocks a reader keeps (32 MiB at 4 KiB): a few searches' candidates.
CACHE_BLOCKS = 8192
REPAIR = "`facesearch index rebuild` writes it again from the catalog"


class IndexDamaged(FacesearchError):
    """An index file fails authentication: changed outside facesearch, or damaged."""


@dataclass(frozen=True)
class FileKeys:
    block: AESGCM
    tail: AESGCM
    mac: bytes
    block_key: bytes  # kept for tests that prove no (key, nonce) pair repeats


def rows_per_block(dim: int) -> int:
    return max(1, BLOCK_BYTES // (dim * 4))


class GcmBlocks:
    """The format-2 vectors file of one index (the same row key for every generation)."""

    format = 2

    def __init__(self, row_key: bytes, dim: int) -> None:
        self.row_key = row_key
        self.dim = dim
        self.rb = dim * 4

    # geometry, from the header's rows per block (R)

    def _tail_slot(self, r: int) -> int:
        return 4 + NONCE + (r - 1) * self.rb + TAG

    def _data_start(self, r: int) -> int:
        return HEADER + 2 * self._tail_slot(r)

    def _block_size(self, r: int) -> int:
        return NONCE + r * self.rb + TAG

    def size(self, rows: int) -> int:
        """Bytes the committed `rows` occupy (what a torn tail is cut back to)."""
        if rows == 0:
            return 0
        r = rows_per_block(self.dim)
        return self._data_start(r) + (rows // r) * self._block_size(r)

    # keys and header

    def keys(self, salt: bytes, name: str) -> FileKeys:
        material = HKDF(
            hashes.SHA256(), 96, salt, b"facesearch vectors v2|" + name.encode()
        ).derive(self.row_key)
        return FileKeys(AESGCM(material[:32]), AESGCM(material[32:64]), material[64:],
                        material[:32])  # fmt: skip

    def _mac(self, keys: FileKeys, name: str, fields: bytes) -> bytes:
        mac = hmac.HMAC(keys.mac, hashes.SHA256())
        mac.update(name.encode() + b"\x00" + fields)
        return mac.finalize()[:16]

    def _new_header(self, name: str) -> tuple[bytes, FileKeys]:
        salt = os.urandom(32)
        keys = self.keys(salt, name)
        fields = MAGIC + struct.pack("<II", self.dim, rows_per_block(self.dim)) + salt
        return fields + self._mac(keys, name, fields), keys

    def read_header(self, raw: bytes | np.ndarray, name: str) -> tuple[bytes, int, FileKeys]:
        head = bytes(raw[:HEADER])
        if len(head) < HEADER or head[:8] != MAGIC:
            raise IndexDamaged(f"{name} has no valid header (damaged or not a facesearch "
                               f"vectors file); {REPAIR}")  # fmt: skip
        dim, r = struct.unpack("<II", head[8:16])
        keys = self.keys(head[16:48], name)
        if not constant_time.bytes_eq(self._mac(keys, name, head[:48]), head[48:]):
            raise IndexDamaged(f"{name}: the header fails authentication; {REPAIR}")
        if (dim, r) != (self.dim, rows_per_block(self.dim)):
            raise IndexDamaged(f"{name} holds blocks of {r} rows of {dim} dimensions, not "
                               f"{rows_per_block(self.dim)} of {self.dim}; {REPAIR}")  # fmt: skip
        return head[:48], r, keys

    # records

    def _block_aad(self, name: str, fields: bytes, index: int) -> bytes:
        return name.encode() + b"\x00" + fields + b"B" + index.to_bytes(8, "little")

    def _tail_aad(self, name: str, fields: bytes, first: int, rows: int) -> bytes:
        return (name.encode() + b"\x00" + fields + b"T" + first.to_bytes(8, "little")
                + rows.to_bytes(4, "little"))  # fmt: skip

    def _seal_block(self, keys: FileKeys, aad: bytes, index: int, plain: bytes) -> bytes:
        nonce = index.to_bytes(4, "little") + os.urandom(8)
        return nonce + keys.block.encrypt(nonce, plain, aad)

    def _open_tail(
        self, raw, name: str, fields: bytes, r: int, keys: FileKeys, first: int, rows: int
    ) -> tuple[int, np.ndarray] | None:
        """(slot, rows) of the tail that authenticates as `rows` rows from `first`."""
        aad = self._tail_aad(name, fields, first, rows)
        slot_size = self._tail_slot(r)
        for slot in (0, 1):
            start = HEADER + slot * slot_size
            record = raw[start : start + slot_size]
            if int.from_bytes(bytes(record[:4]), "little") != rows:
                continue
            body = record[4 + NONCE : 4 + NONCE + rows * self.rb + TAG]
            try:
                plain = keys.tail.decrypt(bytes(record[4 : 4 + NONCE]), bytes(body), aad)
            except InvalidTag:
                continue
            return slot, np.frombuffer(plain, "<f4").reshape(rows, self.dim)
        return None

    def _tail_record(self, keys: FileKeys, aad: bytes, rows: np.ndarray, r: int) -> bytes:
        nonce = os.urandom(NONCE)
        record = len(rows).to_bytes(4, "little") + nonce
        record += keys.tail.encrypt(nonce, rows.tobytes(), aad)
        return record.ljust(self._tail_slot(r), b"\x00")

    # writing

    def append(self, path: Path, committed: int, vectors: np.ndarray) -> None:
        """Add rows after the `committed` ones: new full blocks go past the committed
        length, the new tail into the slot the committed state does not use."""
        vectors = np.ascontiguousarray(vectors, dtype="<f4").reshape(-1, self.dim)
        name = path.name
        if committed == 0:
            header, keys = self._new_header(name)
            fields, r = header[:48], rows_per_block(self.dim)
            tail, free_slot = np.zeros((0, self.dim), "<f4"), 0
        else:
            with path.open("rb") as f:
                raw = f.read(self._data_start(rows_per_block(self.dim)))
            fields, r, keys = self.read_header(raw, name)
            first = committed // r * r
            if committed % r:
                found = self._open_tail(raw, name, fields, r, keys, first, committed % r)
                if found is None:
                    raise IndexDamaged(f"{name}: the rows after block {committed // r} fail "
                                       f"authentication; {REPAIR}")  # fmt: skip
                free_slot, tail = 1 - found[0], found[1]
            else:
                free_slot, tail = 0, np.zeros((0, self.dim), "<f4")
        rows = np.concatenate([tail, vectors]) if len(tail) else vectors
        first_block = committed // r
        full = len(rows) // r
        blocks = b"".join(
            self._seal_block(keys, self._block_aad(name, fields, first_block + i),
                             first_block + i, rows[i * r : (i + 1) * r].tobytes())
            for i in range(full)
        )  # fmt: skip
        new_first = (first_block + full) * r
        new_tail = rows[full * r :]
        slot_size = self._tail_slot(r)
        tail_record = self._tail_record(
            keys, self._tail_aad(name, fields, new_first, len(new_tail)), new_tail, r
        )
        data_at = self._data_start(r) + first_block * self._block_size(r)
        with writing(path), path.open("r+b" if path.exists() else "w+b") as f:
            if committed == 0:
                f.seek(0)
                f.write(header + b"\x00" * (2 * slot_size))
            f.seek(data_at)
            f.write(blocks)
            f.truncate()
            f.seek(HEADER + free_slot * slot_size)
            f.write(tail_record)
            f.flush()
            os.fsync(f.fileno())

    # reading

    def open(self, path: Path, rows: int) -> SealedBlocks:
        return SealedBlocks(self, path, rows)

    def check(self, path: Path, rows: int) -> list[str]:
        """Authenticate every committed block and the tail: what `index verify` reports."""
        try:
            reader = self.open(path, rows)
        except IndexDamaged as exc:
            return [str(exc)]
        bad = []
        for index in range(reader.full):
            try:
                reader.block(index)
            except IndexDamaged:
                bad.append(index)
        if not bad:
            return []
        shown = ", ".join(str(i) for i in bad[:10]) + (" …" if len(bad) > 10 else "")
        return [f"{path.name}: {len(bad)} of {reader.full} blocks of {reader.r} rows fail "
                f"authentication (blocks {shown}); {REPAIR}"]  # fmt: skip

    def records(self, path: Path) -> Iterator[tuple[bytes, bytes, bytes]]:
        """(key, nonce, sealed bytes) of every record the file holds, committed or not."""
        raw = path.read_bytes()
        if not raw:
            return
        _, r, keys = self.read_header(raw, path.name)
        slot_size = self._tail_slot(r)
        tail_key = hashlib.sha256(b"tail" + keys.block_key).digest()  # a name for the tail key
        for slot in (0, 1):
            record = raw[HEADER + slot * slot_size : HEADER + (slot + 1) * slot_size]
            if record.strip(b"\x00"):
                yield tail_key, record[4 : 4 + NONCE], record[4 + NONCE :]
        size = self._block_size(r)
        for start in range(self._data_start(r), len(raw) - size + 1, size):
            yield keys.block_key, raw[start : start + NONCE], raw[start + NONCE : start + size]


class SealedBlocks:
    """The committed rows of a format-2 file, read like a float32 array."""

    def __init__(self, layout: GcmBlocks, path: Path, rows: int) -> None:
        self.layout = layout
        self.name = path.name
        self.dim = layout.dim
        self.shape = (rows, layout.dim)
        self.rows = rows
        self.r = rows_per_block(layout.dim)
        self.full = 0
        self.tail = np.zeros((0, self.dim), "<f4")
        if rows == 0:
            return
        try:
            with path.open("rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise IndexDamaged(f"{self.name} cannot be read ({exc}); {REPAIR}") from None
        self.raw = memoryview(self._map)
        self.fields, self.r, self.keys = layout.read_header(self.raw, self.name)
        self.full = rows // self.r
        if len(self.raw) < layout.size(rows):
            raise IndexDamaged(f"{self.name} is shorter than its {rows} committed rows; {REPAIR}")
        self._start = layout._data_start(self.r)
        self._size = layout._block_size(self.r)
        self._aad = self.name.encode() + b"\x00" + self.fields + b"B"
        if rows % self.r:
            found = layout._open_tail(self.raw, self.name, self.fields, self.r, self.keys,
                                      self.full * self.r, rows % self.r)  # fmt: skip
            if found is None:
                raise IndexDamaged(f"{self.name}: the rows after block {self.full} fail "
                                   f"authentication; {REPAIR}")  # fmt: skip
            self.tail = found[1]
        self._plain = _decryptor(self, CACHE_BLOCKS)

    def __len__(self) -> int:
        return self.rows

    def block(self, index: int) -> np.ndarray:
        """The rows of block `index` (the tail past the last full block)."""
        if index >= self.full:
            return self.tail
        return np.frombuffer(self._plain(index), "<f4").reshape(self.r, self.dim)

    def _blocks(self, indices) -> np.ndarray:
        """Blocks decrypted into one (len(indices), R, dim) array."""
        joined = b"".join([self._plain(int(i)) for i in indices])
        return np.frombuffer(joined, "<f4").reshape(len(indices), self.r, self.dim)

    def _range(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.zeros((0, self.dim), dtype=np.float32)
        first, last = start // self.r, (stop - 1) // self.r
        rows = self._blocks(range(first, last + 1)).reshape(-1, self.dim)
        return rows[start - first * self.r : stop - first * self.r]

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, slice):
            start, stop, step = index.indices(self.rows)
            rows = self._range(start, stop)
            return rows if step == 1 else rows[::step]
        if isinstance(index, int | np.integer):
            i = int(index) + (self.rows if index < 0 else 0)
            if not 0 <= i < self.rows:
                raise IndexError(index)
            return self._range(i, i + 1)[0]
        slots = np.asarray(index, dtype=np.int64)
        if not len(slots):
            return np.zeros((0, self.dim), dtype=np.float32)
        slots = np.where(slots < 0, slots + self.rows, slots)
        if np.all(np.diff(slots) == 1):
            return self._range(int(slots[0]), int(slots[-1]) + 1)
        # Each block is decrypted once however many of its rows are asked for.
        blocks, where = np.unique(slots // self.r, return_inverse=True)
        return self._blocks(blocks.tolist())[where, slots % self.r]


def _decryptor(reader: SealedBlocks, cache: int):
    """block index -> its plaintext. Recently read blocks stay decrypted in memory (never
    on disk): a re-ranking decrypts one block per candidate, and the candidates of one
    search are mostly those of the last. A closure, not a method, so that the cache does
    not keep the reader (and its map) alive."""
    raw, start0, size, full, r = reader.raw, reader._start, reader._size, reader.full, reader.r
    aad, key, name = reader._aad, reader.keys.block, reader.name
    # The tail as a whole block, so that blocks can be joined and indexed alike.
    tail = reader.tail.tobytes().ljust(r * reader.layout.rb, b"\x00")

    def plain(index: int) -> bytes:
        if index >= full:
            return tail
        start = start0 + index * size
        try:
            return key.decrypt(bytes(raw[start : start + NONCE]), raw[start + NONCE : start + size],
                               aad + index.to_bytes(8, "little"))  # fmt: skip
        except InvalidTag:
            raise IndexDamaged(
                f"{name}: block {index} (rows {index * r}-{(index + 1) * r - 1}) fails "
                f"authentication; {REPAIR}"
            ) from None

    return functools.lru_cache(maxsize=cache)(plain) if cache else plain


class PlainRows:
    """Format 1 without a key: float32 rows, one per slot."""

    format = 1

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def size(self, rows: int) -> int:
        return rows * self.dim * 4

    def append(self, path: Path, committed: int, vectors: np.ndarray) -> None:
        append(path, vector_bytes(None, path.name, committed, vectors), self.size(committed))

    def open(self, path: Path, rows: int) -> np.ndarray:
        return mapped(path, "<f4", rows, self.dim)

    def check(self, path: Path, rows: int) -> list[str]:
        return []


class CtrRows(PlainRows):
    """Format 1 with a key: AES-256-CTR rows of an index written before format 2. Read
    only to be rewritten: opening such an index migrates it (see PersistentIndex)."""

    def __init__(self, row_key: bytes, dim: int) -> None:
        super().__init__(dim)
        self.cipher = RowCipher(row_key)

    def append(self, path: Path, committed: int, vectors: np.ndarray) -> None:
        data = vector_bytes(self.cipher, path.name, committed, vectors)
        append(path, data, self.size(committed))

    def open(self, path: Path, rows: int):
        return mapped_rows(path, rows, self.dim, self.cipher)


def vector_layout(dim: int, row_key: bytes | None, fmt: int) -> GcmBlocks | PlainRows:
    if row_key is None:
        return PlainRows(dim)
    if fmt >= GcmBlocks.format:
        return GcmBlocks(row_key, dim)
    return CtrRows(row_key, dim)
