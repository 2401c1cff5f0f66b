"""Reading and writing connectome files: TVB connectivity `.zip` and brainmass `.npz`.

The file-format side of `Connectome.load` and `Connectome.save`. Readers return
plain arrays (a dict of `from_arrays` keyword arguments); validation of the
contents is left to `Connectome.from_arrays`.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from ..storage import atomic_write

if TYPE_CHECKING:
    from ..connectome import Connectome

__all__ = ["read_arrays", "write_npz"]

# A TVB connectivity zip member is read whole into memory, so its declared size is
# checked first. `centres.txt` (one short line per region) may have 16 MiB; a matrix
# then at most `_BYTES_PER_ENTRY` bytes of text per entry of an n x n matrix, n from
# `centres.txt` (a full-precision float and its separator need 25), and at least
# 64 KiB. A hostile archive (a 65 KB zip of one 64 MB line) is refused before any of
# it is decompressed or parsed.
_MAX_CENTRES_BYTES = 16 * 2**20
_BYTES_PER_ENTRY = 64
_MIN_MATRIX_BYTES = 64 * 2**10
_MIN_NPZ_BYTES = 256 * 2**20  # what an .npz may expand to, whatever its size on disk

_TVB_WEIGHTS = "weights.txt"
_TVB_TRACTS = "tract_lengths.txt"
_TVB_CENTRES = "centres.txt"


def read_arrays(path: Path) -> dict[str, Any]:
    """Read the arrays of a TVB connectivity `.zip` or a brainmass `.npz` at `path`.

    **Returns:** a dict with keys `weights`, `tract_lengths` (n_regions,
    n_regions; mm), `labels` (n_regions names) and, when present, `centres`
    (n_regions, 3; mm), ready for `Connectome.from_arrays`.

    **Raises:** `FileNotFoundError` when `path` does not exist; `ValueError`
    for another suffix, or a missing or malformed member or key.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".zip", ".npz"):
        raise ValueError(
            f"{path}: unknown connectome format {path.suffix!r}; expected a TVB "
            "connectivity '.zip' or a '.npz' written by Connectome.save."
        )
    if not path.is_file():
        raise FileNotFoundError(f"connectome file not found: {path}")
    if suffix == ".zip":
        arrays = _read_tvb_zip(path)
    else:
        arrays = _read_npz(path)
    return arrays


def write_npz(connectome: Connectome, path: str | os.PathLike) -> Path:
    """Write `connectome` to an `.npz` file (see `Connectome.save`); returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"path: expected a file name ending in '.npz', got {str(path)!r}.")
    arrays = {
        "weights": np.asarray(connectome.weights),
        "tract_lengths": np.asarray(connectome.tract_lengths),
        "labels": np.asarray(connectome.labels, dtype=np.str_),
    }
    if connectome.centres is not None:
        arrays["centres"] = np.asarray(connectome.centres)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


# ---------------------------------------------------------------- TVB zip


def _read_tvb_zip(path: Path) -> dict[str, Any]:
    """Read weights, tract lengths, labels and centres from a TVB connectivity zip."""
    source = path.name
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{source}: not a readable zip archive ({err}).") from err
    with archive:
        labels, centres = _parse_centres(
            _read_member(archive, source, _TVB_CENTRES, _MAX_CENTRES_BYTES, "a centres file"),
            source,
            _TVB_CENTRES,
        )
        n = len(labels)
        limit = max(_MIN_MATRIX_BYTES, _BYTES_PER_ENTRY * n**2)
        what = f"the text of a {n} x {n} matrix ({n} regions in '{_TVB_CENTRES}')"
        weights, tracts = (
            _parse_matrix(_read_member(archive, source, member, limit, what), source, member)
            for member in (_TVB_WEIGHTS, _TVB_TRACTS)
        )
    n = weights.shape[0]
    if tracts.shape != weights.shape:
        raise ValueError(
            f"{source}: member '{_TVB_TRACTS}' is {tracts.shape[0]} x {tracts.shape[1]}, "
            f"expected {n} x {n} like '{_TVB_WEIGHTS}'."
        )
    if len(labels) != n:
        raise ValueError(
            f"{source}: member '{_TVB_CENTRES}' has {len(labels)} regions, expected {n} "
            f"(the size of '{_TVB_WEIGHTS}')."
        )
    return {"weights": weights, "tract_lengths": tracts, "labels": labels, "centres": centres}


def _read_member(
    archive: zipfile.ZipFile, source: str, member: str, max_bytes: int, what: str
) -> str:
    """Read the one archive member whose base name is `member` into memory, as text.

    A member declaring more than `max_bytes` (uncompressed) is refused unread.
    """
    matches = [
        info
        for info in archive.infolist()
        if not info.is_dir() and PurePosixPath(info.filename.replace("\\", "/")).name == member
    ]
    if not matches:
        raise ValueError(f"{source}: member '{member}' is missing.")
    if len(matches) > 1:
        names = ", ".join(repr(info.filename) for info in matches)
        raise ValueError(
            f"{source}: member '{member}' is ambiguous, found {len(matches)}: {names}."
        )
    info = matches[0]
    if info.file_size > max_bytes:
        raise ValueError(
            f"{source}: member '{member}' is {info.file_size} bytes, more than the "
            f"{max_bytes} bytes allowed for {what}; the archive is damaged or not a "
            "connectivity file."
        )
    try:
        data = archive.read(info)
    except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as err:
        raise ValueError(f"{source}: member '{member}' cannot be read ({err}).") from err
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{source}: member '{member}' is not UTF-8 text ({err}).") from err


def _numbered_lines(text: str):
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield lineno, stripped


def _parse_matrix(text: str, source: str, member: str) -> np.ndarray:
    """Parse a square float matrix from whitespace-separated text."""
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    for lineno, line in _numbered_lines(text):
        try:
            rows.append([float(token) for token in line.replace(",", " ").split()])
        except ValueError as err:
            raise ValueError(
                f"{source}: member '{member}' line {lineno}: expected numbers, got {line[:60]!r}."
            ) from err
        line_numbers.append(lineno)
    if not rows:
        raise ValueError(f"{source}: member '{member}' is empty; expected an n x n matrix.")
    n = len(rows)
    for lineno, row in zip(line_numbers, rows, strict=True):
        if len(row) != n:
            raise ValueError(
                f"{source}: member '{member}' line {lineno} has {len(row)} columns, expected "
                f"{n} (a square matrix with {n} rows)."
            )
    return np.asarray(rows, dtype=np.float64)


def _parse_centres(text: str, source: str, member: str) -> tuple[list[str], np.ndarray]:
    """Parse labels and (n, 3) coordinates from lines `label x y z`."""
    labels: list[str] = []
    coords: list[list[float]] = []
    for lineno, line in _numbered_lines(text):
        tokens = line.split()
        if len(tokens) != 4:
            raise ValueError(
                f"{source}: member '{member}' line {lineno}: expected 'label x y z', "
                f"got {len(tokens)} fields ({line[:60]!r})."
            )
        try:
            coords.append([float(t) for t in tokens[1:]])
        except ValueError as err:
            raise ValueError(
                f"{source}: member '{member}' line {lineno}: expected numeric x y z, "
                f"got {line[:60]!r}."
            ) from err
        labels.append(tokens[0])
    if not labels:
        raise ValueError(f"{source}: member '{member}' is empty; expected lines 'label x y z'.")
    return labels, np.asarray(coords, dtype=np.float64)


# ----------------------------------------------------------------------- npz


def _read_npz(path: Path) -> dict[str, Any]:
    """Read the arrays of an `.npz` written by `Connectome.save`, never unpickling."""
    source = path.name
    try:
        with zipfile.ZipFile(path) as zf:
            declared = sum(info.file_size for info in zf.infolist())
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{source}: not a readable .npz file ({err}).") from err
    budget = max(_MIN_NPZ_BYTES, 2 * path.stat().st_size)  # Connectome.save stores, never deflates
    if declared > budget:
        raise ValueError(
            f"{source}: its members declare {declared} bytes, more than the {budget} bytes "
            "allowed for a file of this size; the archive is damaged or not a connectome."
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{source}: not a readable .npz file ({err}).") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{source}: expected an .npz archive of named arrays, got a single array.")
    with archive:
        out: dict[str, Any] = {}
        for key in ("weights", "tract_lengths", "labels", "centres"):
            if key not in archive.files:
                if key == "centres":
                    continue
                raise ValueError(
                    f"{source}: key '{key}' is missing; expected keys 'weights', "
                    f"'tract_lengths', 'labels' (and optionally 'centres'), got {archive.files}."
                )
            try:
                out[key] = archive[key]
            except ValueError as err:
                if "allow_pickle" in str(err):
                    why = (
                        "it holds Python objects, which brainmass never loads (that would "
                        "need pickle), or its array header is damaged"
                    )
                else:
                    why = f"it is damaged ({err})"
                raise ValueError(
                    f"{source}: key '{key}' cannot be read: {why}. Re-save with Connectome.save."
                ) from err
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise ValueError(
                    f"{source}: key '{key}' is truncated or corrupted ({type(err).__name__}: "
                    f"{err})."
                ) from err
    labels = out["labels"]
    if labels.ndim != 1 or labels.dtype.kind != "U":
        raise ValueError(
            f"{source}: key 'labels' must be a 1-D unicode string array, got dtype "
            f"{labels.dtype} and shape {labels.shape}."
        )
    out["labels"] = [str(lab) for lab in labels]
    for key in ("weights", "tract_lengths", "centres"):
        if key in out and out[key].dtype.kind not in "fiu":
            raise ValueError(
                f"{source}: key '{key}' must be a numeric array, got dtype {out[key].dtype}."
            )
    return out
