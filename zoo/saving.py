"""Loading ``.keras`` files with errors that say what is wrong with them.

Keras reports a truncated archive and a file that is not an archive at all as
"File not found", and a Lambda layer as a deserialization error. ``load_model``
checks the file first and names the problem; it always loads in Keras' safe
mode, so a file from elsewhere cannot run arbitrary Python code.
"""

from __future__ import annotations

import os
import zipfile


class ModelFileError(ValueError):
    """A ``.keras`` file that cannot or must not be loaded; the message says why."""


# What `Model.save` writes into every `.keras` archive.
_REQUIRED = ("config.json", "metadata.json")
# Largest .keras file, and largest total of its unpacked members, loaded by
# default: a small file can unpack to gigabytes (a "zip bomb").
MAX_FILE_MB = 100


def unpacked_size(path) -> int | None:
    """The total size of a zip archive's members once decompressed, read
    from its directory without decompressing anything; ``None`` if ``path``
    is not a zip archive. Python's zipfile never inflates a member past the
    size its directory states, so this bounds what loading can unpack."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return None


def load_model(path, *, compile: bool = True, max_file_mb: float = MAX_FILE_MB):
    """Load a ``.keras`` archive saved by ``model.save(...)``, in safe mode.

    Args:
        path: the ``.keras`` file.
        compile: restore the optimizer and loss too (as ``keras.saving.load_model``).
        max_file_mb: refuse a file, or a file whose members unpack to, more
            than this many megabytes (checked before anything is unpacked).

    Returns:
        The ``keras.Model``.

    Raises:
        ModelFileError: the file is missing, not a zip archive (or cut short,
            which looks the same), damaged, not a Keras model, or contains a
            ``Lambda`` layer, whose Python code safe mode does not run.
    """
    import keras

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: file not found")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied; this user cannot read the "
                             f"file") from None
    for size, what in ((os.path.getsize(path), "is"), (unpacked_size(path) or 0, "unpacks to")):
        if size / 1e6 > max_file_mb:
            raise ModelFileError(
                f"{path}: the file {what} {size / 1e6:,.1f} MB, over the {max_file_mb:,g} "
                f"MB limit; pass --max-file-mb {int(size / 1e6 * 1.1) + 1} if you trust "
                f"it and this machine has the memory")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path}: not a .keras archive (a .keras file is a zip archive; this one "
            f"is {os.path.getsize(path):,} bytes with no zip directory, so it is "
            f"either another format or truncated, e.g. by an interrupted copy)")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # CRC of every member
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as err:
        raise ModelFileError(f"{path}: damaged .keras archive ({err})") from None
    if damaged is not None:
        raise ModelFileError(f"{path}: damaged .keras archive ({damaged!r} fails "
                             f"its checksum)")
    missing = [n for n in _REQUIRED if n not in names]
    if missing:
        raise ModelFileError(f"{path}: a zip archive but not a Keras model "
                             f"(no {', '.join(missing)})")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except ValueError as err:
        if "Lambda" in str(err) or "safe_mode" in str(err):
            raise ModelFileError(
                f"{path}: the model contains a Lambda layer, i.e. Python code that "
                f"would run on loading; refused in safe mode. If you trust where the "
                f"file came from, load it yourself with "
                f"keras.saving.load_model(path, safe_mode=False)") from None
        raise ModelFileError(f"{path}: cannot be loaded as a Keras model ({err})") from None
