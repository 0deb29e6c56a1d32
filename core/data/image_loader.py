"""Load a user's images safely: a .npy / .npz array of shape (n, H, W) or (n, C, H, W), or a .zip of PNG files
(one class per folder, optionally), read with Pillow.

Uploads are untrusted, as in `loader` (whose `DataError` this module raises, naming the file, and inside a
zip the member, and saying what was expected): nothing is unpickled; sizes are checked before anything is
decompressed (the archive's declared sizes and compression ratios, then each member's bytes as read, and
each image's declared pixel count before Pillow decodes it), so a zip bomb or a decompression bomb is
refused early. Limits: `ImageLimits`.

Channels: a 4-D array is (n, C, H, W), or (n, H, W, C) when only its last axis can be channels (1 to 4;
said in `ImageData.note`). PNGs are read as grey (modes 1, L, LA, and 16-bit I;16) or RGB (any other mode,
palettes included); alpha is dropped; a zip of grey and colour images becomes RGB. Pixel ranges follow
`ImageSpec.infer`: 8-bit PNGs and uint8 arrays are 0..255 (256 levels).

Labels in a zip: each image's class is the folder it is in (`3/a.png` is class "3"), after removing the
folders that every member shares (`digits/3/a.png` too). Images at the top, beside class folders, are
refused by name; a zip with no folders is unlabelled. `__MACOSX/` entries and dot-files are skipped.
"""

from __future__ import annotations

import io
import os
import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from ..maths.imagespec import ImageSpec
from ..nets.unet import MAX_IMAGE_SIDE
from .images import ImageData
from .loader import (
    MAX_ABS_VALUE,
    ZIP_MAGICS,
    DataError,
    check_size,
    read_npy,
    read_npz_member,
    require_positive,
)

__all__ = ["IMAGE_LIMITS", "IMAGE_SUFFIXES", "ImageLimits", "is_image_upload", "load_images", "load_images_bytes"]

IMAGE_SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".zip")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_GREY_MODES = ("1", "L", "LA", "I;16", "I;16B", "I;16L")


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds on an image upload.

    Attributes:
        max_bytes: the file itself (and a decompressed .npz array).
        max_images: images in the set.
        max_side: pixels along either side of an image.
        max_values: n * C * H * W, the values of the whole set (float32: 4 bytes each).
        max_unpacked_bytes: the sum of a zip's members, decompressed.
        max_ratio: decompressed / compressed size of one zip member (PNGs barely compress; a bomb does).
    """

    max_bytes: int = 50 * 2**20
    max_images: int = 100_000
    max_side: int = min(64, MAX_IMAGE_SIDE)
    max_values: int = 50_000_000
    max_unpacked_bytes: int = 200 * 2**20
    max_ratio: int = 100

    def __post_init__(self) -> None:
        require_positive(self)


IMAGE_LIMITS = ImageLimits()


def load_images(path: str | os.PathLike[str], *, name: str | None = None,
                limits: ImageLimits = IMAGE_LIMITS) -> ImageData:
    """Images from a file on disk (.npy, .npz or .zip); `name` is shown in messages (default: the path)."""
    display = os.fspath(path) if name is None else name
    try:
        size = os.path.getsize(path)
    except OSError:
        raise DataError(display, "file not found or not readable") from None
    check_size(display, size, limits.max_bytes)
    with open(path, "rb") as handle:
        return load_images_bytes(handle.read(limits.max_bytes + 1), display, limits=limits)


def load_images_bytes(data: bytes, name: str, *, limits: ImageLimits = IMAGE_LIMITS) -> ImageData:
    """Images from an upload's bytes; the format comes from `name`'s extension. DataError naming the problem."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in IMAGE_SUFFIXES:
        raise DataError(name, f"unsupported file type ({suffix or 'no extension'}); images come as "
                              f"{', '.join(IMAGE_SUFFIXES)}")
    check_size(name, len(data), limits.max_bytes)
    if not data:
        raise DataError(name, "file is empty (0 bytes)")
    if suffix == ".zip":
        return _from_zip(data, name, limits)
    if suffix == ".npz":
        raw, member = read_npz_member(data, name, limits.max_bytes)
        return _from_array(raw, name, limits, member)
    return _from_array(data, name, limits)


def is_image_upload(data: bytes, name: str) -> bool:
    """Whether an upload is images rather than a table: a .zip, or a .npy / .npz array of 3 or more dimensions.
    (A file that cannot be read at all is not called images: the table loader then names its problem.)"""
    suffix = os.path.splitext(name)[1].lower()
    if suffix == ".zip":
        return True
    if suffix not in (".npy", ".npz"):
        return False
    ndim: list[int] = []
    try:
        raw = read_npz_member(data, name, IMAGE_LIMITS.max_bytes)[0] if suffix == ".npz" else data
        read_npy(raw, name, check_shape=lambda shape: ndim.append(len(shape)))
    except DataError:
        return bool(ndim) and ndim[0] >= 3
    return ndim[0] >= 3


def _check_set(display: str, count: int, shape: tuple[int, int, int], limits: ImageLimits) -> None:
    """DataError for too few or too many images, too large a side, or too many values in all."""
    c, h, w = shape
    if count < 2:
        raise DataError(display, f"too few images: found {count}, need at least 2")
    if count > limits.max_images:
        raise DataError(display, f"too many images: {count:,} (the limit is {limits.max_images:,})")
    if max(h, w) > limits.max_side or min(h, w) < 1:
        raise DataError(display, f"images of {h} x {w} pixels; each side must be 1 to {limits.max_side} pixels "
                                 "(downscale larger images first)")
    if count * c * h * w > limits.max_values:
        raise DataError(display, f"{count:,} images of {c} x {h} x {w} are {count * c * h * w:,} values, over the "
                                 f"limit of {limits.max_values:,}")


# --- arrays ------------------------------------------------------------------------------------------------


def _layout(shape: tuple[int, ...], display: str, where: str) -> tuple[tuple[int, int, int, int], bool, str]:
    """(n, C, H, W), whether the array is channels-last, and a note for people; DataError for another rank."""
    if len(shape) == 3:
        return (shape[0], 1, shape[1], shape[2]), False, ""
    if len(shape) == 4:
        n, a, b, c = shape
        if 1 <= a <= 4:
            return (n, a, b, c), False, ""
        if 1 <= c <= 4:
            return (n, c, a, b), True, f"read as (n, H, W, C) = {shape}: its last axis holds the {c} channels"
        raise DataError(display, f"{where} has shape {shape}: neither axis 1 nor axis 3 can be channels "
                                 "(1 to 4); expected (n, C, H, W) or (n, H, W, C)")
    raise DataError(display, f"{where} has shape {shape}, {len(shape)}-D; images come as an array of shape "
                             "(n, H, W) or (n, C, H, W)" + (" (a table of (n, d) points goes through the data "
                                                            "loader, not as images)" if len(shape) <= 2 else ""))


def _from_array(data: bytes, display: str, limits: ImageLimits, member: str = "") -> ImageData:
    """Images from .npy bytes: layout and limits checked from the header, then every value finite."""
    where = f"array '{member}'" if member else "the array"
    layout: list[tuple[tuple[int, int, int, int], bool, str]] = []

    def check_shape(shape: tuple[int, ...]) -> None:
        layout.append(_layout(shape, display, where))
        n, c, h, w = layout[0][0]
        _check_set(display, n, (c, h, w), limits)

    array = read_npy(data, display, member, check_shape)
    (n, c, h, w), channels_last, note = layout[0]
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    values = np.asarray(array, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), values.shape))
        kind = "NaN" if np.isnan(values[index]) else f"an infinite value ({values[index]})"
        raise DataError(display, f"{where} holds {kind} at index {list(index)} (image {index[0] + 1}); "
                                 "all pixel values must be finite")
    if np.abs(values).max() > MAX_ABS_VALUE:
        raise DataError(display, f"{where} holds values beyond {MAX_ABS_VALUE:.0e} in magnitude")
    images = values.transpose(0, 3, 1, 2) if channels_last else values.reshape(n, c, h, w)
    images = np.ascontiguousarray(images, dtype=np.float32)
    if (images == images[0]).all():
        raise DataError(display, f"all {n:,} images are identical: there is nothing to learn from")
    return ImageData(images=images, spec=ImageSpec.infer(images, array.dtype), name=display, note=note)


# --- zip of PNGs -------------------------------------------------------------------------------------------


def _members(archive: zipfile.ZipFile, display: str, limits: ImageLimits) -> list[zipfile.ZipInfo]:
    """The image members (not folders, __MACOSX or dot-files), after the archive-wide size checks."""
    infos = [info for info in archive.infolist() if not info.is_dir()
             and not info.filename.startswith("__MACOSX/")
             and not posixpath.basename(info.filename).startswith(".")]
    if not infos:
        raise DataError(display, "the zip holds no files; expected PNG images (one class per folder, optionally)")
    total = sum(info.file_size for info in infos)
    if total > limits.max_unpacked_bytes:
        raise DataError(display, f"the zip unpacks to {total / 2**20:.1f} MB ({total:,} bytes), over the limit of "
                                 f"{limits.max_unpacked_bytes / 2**20:.0f} MB (a zip bomb?)")
    for info in infos:
        if info.file_size > limits.max_ratio * max(info.compress_size, 1) and info.file_size > 1 << 16:
            raise DataError(display, f"{info.filename}: compressed {info.file_size / max(info.compress_size, 1):,.0f}"
                                     f" to 1, over the limit of {limits.max_ratio} to 1 for an image (a zip bomb?)")
    if len(infos) > limits.max_images:
        raise DataError(display, f"too many files: {len(infos):,} (the limit is {limits.max_images:,} images)")
    return sorted(infos, key=lambda info: info.filename)


def _classes(names: list[str], display: str) -> list[str] | None:
    """The class folder of each member, after dropping the folders all share; None when no member is in one."""
    parts = [name.split("/") for name in names]
    shared = 0
    while all(len(p) > shared + 1 for p in parts) and len({p[shared] for p in parts}) == 1:
        shared += 1
    depth = [len(p) - shared for p in parts]
    if all(d == 1 for d in depth):
        return None
    top = next((name for name, d in zip(names, depth, strict=True) if d == 1), None)
    if top is not None:
        raise DataError(display, f"{top}: this image is at the top of the zip while others are in class folders; "
                                 "put every image in its class's folder, or none in folders")
    return [p[shared] for p in parts]


def _decode(raw: bytes, display: str, member: str, limits: ImageLimits) -> np.ndarray:
    """One PNG member as an array [H, W] (grey) or [H, W, 3] (colour), its pixel count checked before decoding."""
    from PIL import Image, UnidentifiedImageError

    if not raw.startswith(_PNG_MAGIC):
        raise DataError(display, f"{member}: not a PNG image (images in a zip must be PNG files)")
    try:
        with Image.open(io.BytesIO(raw), formats=["PNG"]) as image:
            w, h = image.size
            if max(w, h) > limits.max_side:
                raise DataError(display, f"{member}: {w} x {h} pixels; each side must be at most {limits.max_side}"
                                         " pixels (downscale larger images first)")
            if image.mode in _GREY_MODES:
                pixels = np.asarray(image if image.mode.startswith("I;16") else image.convert("L"))
            else:
                pixels = np.asarray(image.convert("RGB"))
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(display, f"{member}: not a readable PNG image ({err})") from None
    return pixels


def _read_members(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], display: str,
                  limits: ImageLimits) -> Iterator[np.ndarray]:
    """Each member decoded. zipfile reads no more than a member's declared (and checked) size, and a member
    whose bytes do not match its declared size and CRC is an error, so a lying header cannot inflate it."""
    for info in infos:
        with archive.open(info) as handle:
            raw = handle.read()
        yield _decode(raw, display, info.filename, limits)


def _from_zip(data: bytes, display: str, limits: ImageLimits) -> ImageData:
    """Images (and their class folders) from a zip of PNGs; every image must have the first one's size."""
    if not data.startswith(ZIP_MAGICS):
        raise DataError(display, "not a .zip archive (it does not start with the zip magic bytes)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = _members(archive, display, limits)
            classes = _classes([info.filename for info in infos], display)
            pixels: list[np.ndarray] = []
            for info, image in zip(infos, _read_members(archive, infos, display, limits), strict=True):
                if pixels and image.shape[:2] != pixels[0].shape[:2]:
                    first = pixels[0].shape
                    raise DataError(display, f"{info.filename}: {image.shape[1]} x {image.shape[0]} pixels (width x "
                                             f"height), but {infos[0].filename} is {first[1]} x {first[0]}; all "
                                             "images must have the same size")
                pixels.append(image)
    except DataError:
        raise
    except Exception as exc:  # zipfile raises many undocumented types (struct, zlib, EOF...) on bad input
        raise DataError(display, f"corrupt .zip archive ({type(exc).__name__}: {exc})") from None
    colour = any(p.ndim == 3 for p in pixels)
    deep = any(p.dtype == np.uint16 or p.dtype.itemsize > 1 for p in pixels)
    stacked = np.stack([_channels_first(p, colour) for p in pixels]).astype(np.uint16 if deep else np.uint8)
    _check_set(display, len(stacked), stacked.shape[1:], limits)
    images = stacked.astype(np.float32)
    if (images == images[0]).all():
        raise DataError(display, f"all {len(images):,} images are identical: there is nothing to learn from")
    result = ImageData(images=images, spec=ImageSpec.infer(images, stacked.dtype), name=display)
    if classes is None:
        return result
    names = tuple(sorted(set(classes), key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c)))
    if len(names) < 2:
        return replace(result, note=f"every image is in folder {names[0]!r}: read as one set, without labels")
    return replace(result, labels=np.array([names.index(c) for c in classes], dtype=np.int64), names=names)


def _channels_first(pixels: np.ndarray, colour: bool) -> np.ndarray:
    """[H, W] or [H, W, 3] pixels as [C, H, W]; grey ones repeated into 3 channels in a colour set."""
    if pixels.ndim == 2:
        return np.repeat(pixels[None], 3, axis=0) if colour else pixels[None]
    return pixels.transpose(2, 0, 1)
