"""Read MXNet's ``.params`` files (``mx.nd.save``, Gluon's ``save_parameters``) with numpy alone.

The binary layout (little-endian), as MXNet 1.x writes it:

- ``uint64`` list magic ``0x112``, ``uint64`` reserved;
- ``uint64`` number of arrays, then each array: ``uint32`` array magic (V1 ``0xF993FAC8``, V2 ``0xF993FAC9``,
  V3 ``0xF993FACA``), from V2 on an ``int32`` storage type (0: dense), the shape (``int32`` ndim, then
  ``int64`` dims; ``uint32`` dims in V1), the context (two ``int32``), an ``int32`` dtype code and the raw data;
- ``uint64`` number of names, then each name as ``uint64`` length and UTF-8 bytes.

MXNet 2 writes ``.params`` as a numpy ``.npz`` archive; that is read with ``numpy.load``.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np

LIST_MAGIC = 0x112
V1_MAGIC, V2_MAGIC, V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
# mshadow's type codes
DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
    8: np.dtype("<i2"),
    9: np.dtype("<u2"),
    10: np.dtype("<u4"),
    11: np.dtype("<u8"),
}
BFLOAT16 = 12


class ParamsFormatError(ValueError):
    """The file is not an MXNet parameter file, or uses a part of the format we do not read."""


class _Reader:
    def __init__(self, data: bytes, path: str) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ParamsFormatError(f"{self.path}: truncated MXNet parameter file (ends at byte {len(self.data)})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self) -> np.ndarray:
        (magic,) = self.unpack("I")
        if magic not in (V1_MAGIC, V2_MAGIC, V3_MAGIC):
            raise ParamsFormatError(f"{self.path}: unknown array header 0x{magic:X} at byte {self.pos - 4}")
        if magic != V1_MAGIC:
            (stype,) = self.unpack("i")
            if stype != 0:
                raise ParamsFormatError(f"{self.path}: sparse arrays (storage type {stype}) are not supported")
        (ndim,) = self.unpack("i")
        if ndim < 0 or (ndim == 0 and magic != V3_MAGIC):  # an empty (unset) array
            return np.zeros((0,), np.float32)
        shape = self.unpack(("I" if magic == V1_MAGIC else "q") * ndim)
        self.unpack("ii")  # device type and id: irrelevant on reading
        (code,) = self.unpack("i")
        count = int(np.prod(shape, dtype=np.int64))
        if code == BFLOAT16:  # numpy has no bfloat16: widen the upper halves of float32
            raw = np.frombuffer(self.take(2 * count), "<u2").astype(np.uint32) << 16
            return raw.view(np.float32).reshape(shape)
        if code not in DTYPES:
            raise ParamsFormatError(f"{self.path}: unsupported array type code {code}")
        dtype = DTYPES[code]
        return np.frombuffer(self.take(dtype.itemsize * count), dtype).reshape(shape).copy()

    def string(self) -> str:
        (length,) = self.unpack("Q")
        return self.take(length).decode("utf-8")


def read_mxnet_params(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The named arrays of an MXNet ``.params`` file, in file order.

    Names keep Gluon's structural form (``features.conv_first.conv2d.weight``); the ``arg:`` / ``aux:``
    prefixes of symbolic checkpoints are dropped.

    Raises:
        ParamsFormatError: not a parameter file, truncated, unnamed, or sparse arrays.
        FileNotFoundError: no such file.
    """
    p = Path(path)
    data = p.read_bytes()
    if zipfile.is_zipfile(p):  # MXNet 2: numpy's npz
        with np.load(p, allow_pickle=False) as npz:
            return {_strip(k): npz[k] for k in npz.files}
    reader = _Reader(data, str(p))
    if len(data) < 16:
        raise ParamsFormatError(f"{p}: not an MXNet parameter file (only {len(data)} bytes)")
    magic, _ = reader.unpack("QQ")
    if magic != LIST_MAGIC:
        raise ParamsFormatError(f"{p}: not an MXNet parameter file (header 0x{magic:X}, expected 0x112)")
    (count,) = reader.unpack("Q")
    arrays = [reader.array() for _ in range(count)]
    (nnames,) = reader.unpack("Q")
    if nnames != count:
        raise ParamsFormatError(f"{p}: {count} arrays but {nnames} names; only named parameter files are supported")
    names = [reader.string() for _ in range(nnames)]
    if reader.pos != len(data):
        raise ParamsFormatError(f"{p}: {len(data) - reader.pos} unexpected bytes after the parameters")
    return {_strip(n): a for n, a in zip(names, arrays)}


def _strip(name: str) -> str:
    return name.split(":", 1)[1] if name.startswith(("arg:", "aux:")) else name
