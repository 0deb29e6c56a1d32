"""Image uploads: arrays and zips of PNGs load with their shape, range and class folders; every bad upload gets
a message that names the file (and the member) and the problem, and nothing is decompressed past the limits."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from flowscope.data.image_loader import ImageLimits, is_image_upload, load_images, load_images_bytes
from flowscope.data.loader import DataError

RNG = np.random.default_rng(0)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def zipped(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def grey(h: int = 8, w: int = 8) -> np.ndarray:
    return RNG.integers(0, 256, (h, w)).astype(np.uint8)


def test_arrays_of_rank_3_and_4_load_with_their_range() -> None:
    three = load_images_bytes(npy(RNG.integers(0, 17, (12, 8, 8)).astype(np.int64)), "digits.npy")
    assert three.images.shape == (12, 1, 8, 8) and three.spec.levels == 17 and three.spec.high == 16
    four = load_images_bytes(npy(RNG.integers(0, 256, (5, 3, 6, 4)).astype(np.uint8)), "rgb.npy")
    assert four.images.shape == (5, 3, 6, 4) and (four.spec.low, four.spec.high, four.spec.levels) == (0, 255, 256)
    last = load_images_bytes(npy(RNG.random((5, 6, 4, 3)).astype(np.float32)), "hwc.npy")
    assert last.images.shape == (5, 3, 6, 4) and "channels" in last.note and last.spec.levels is None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=RNG.random((4, 5, 5)))
    assert load_images_bytes(buffer.getvalue(), "x.npz").images.shape == (4, 1, 5, 5)


def test_a_zip_of_class_folders_gives_labels_in_natural_order(tmp_path: object) -> None:
    files = {f"set/{k}/{i}.png": png(grey()) for k in (2, 10, 1) for i in range(3)}
    files["set/.DS_Store"] = b"junk"
    files["__MACOSX/set/._1.png"] = b"junk"
    data = load_images_bytes(zipped(files), "set.zip")
    assert data.images.shape == (9, 1, 8, 8) and data.names == ("1", "2", "10")
    assert np.bincount(data.labels).tolist() == [3, 3, 3] and data.spec.levels == 256
    flat = load_images_bytes(zipped({f"{i}.png": png(grey()) for i in range(4)}), "flat.zip")
    assert flat.labels is None and flat.names == ()
    mixed_modes = {"a/1.png": png(grey()), "b/2.png": png(RNG.integers(0, 256, (8, 8, 3)).astype(np.uint8))}
    assert load_images_bytes(zipped(mixed_modes), "m.zip").images.shape == (2, 3, 8, 8)  # grey joins colour


@pytest.mark.parametrize("name, data, message", [
    ("table.npy", npy(RNG.random((10, 8))), r"table.npy: the array has shape \(10, 8\), 2-D; images come as"),
    ("five.npy", npy(RNG.random((2, 1, 1, 4, 4))), r"five.npy: the array has shape \(2, 1, 1, 4, 4\), 5-D"),
    ("nan.npy", npy(np.where(np.arange(48).reshape(3, 4, 4) == 21, np.nan, 1.0)),
     r"nan.npy: the array holds NaN at index \[1, 1, 1\] \(image 2\)"),
    ("wide.npy", npy(np.zeros((3, 5, 8, 8))), r"neither axis 1 nor axis 3 can be channels"),
    ("one.npy", npy(np.zeros((1, 8, 8))), r"one.npy: too few images: found 1"),
    ("same.npy", npy(np.ones((4, 8, 8))), r"same.npy: all 4 images are identical"),
    ("big.npy", npy(np.zeros((2, 100, 90), np.uint8)), r"big.npy: images of 100 x 90 pixels; each side must be"),
    ("objects.npy", npy(np.array([[[None]], [[1]]], dtype=object)), r"object dtype.*refusing to unpickle"),
    ("sizes.zip", zipped({"a/1.png": png(grey(8, 8)), "b/2.png": png(grey(9, 8))}),
     r"sizes.zip: b/2.png: 8 x 9 pixels \(width x height\), but a/1.png is 8 x 8; all images must have the same"),
    ("text.zip", zipped({"a/1.png": png(grey()), "a/notes.txt": b"hello"}),
     r"text.zip: a/notes.txt: not a PNG image"),
    ("fake.zip", zipped({"a/1.png": png(grey()), "a/2.png": b"\x89PNG\r\n\x1a\n broken"}),
     r"fake.zip: a/2.png: not a readable PNG image"),
    ("top.zip", zipped({"a/1.png": png(grey()), "2.png": png(grey())}),
     r"top.zip: 2.png: this image is at the top of the zip while others are in class folders"),
    ("huge.zip", zipped({"1.png": png(np.zeros((300, 200), np.uint8)), "2.png": png(grey())}),
     r"huge.zip: 1.png: 200 x 300 pixels; each side must be at most 64"),
    ("empty.zip", zipped({}), r"empty.zip: the zip holds no files"),
    ("notzip.zip", b"hello, not a zip", r"notzip.zip: not a .zip archive"),
    ("photo.jpg", b"\xff\xd8\xff", r"photo.jpg: unsupported file type \(.jpg\); images come as .npy, .npz, .zip"),
])
def test_bad_uploads_get_a_named_error(name: str, data: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_images_bytes(data, name)


def test_a_zip_bomb_is_refused_before_it_is_decompressed() -> None:
    limits = ImageLimits(max_unpacked_bytes=2 * 2**20, max_ratio=100)
    total = zipped({"a/1.png": png(grey()), "a/2.png": b"\0" * (3 * 2**20)})  # 3 MB of zeros: ~3 kB packed
    with pytest.raises(DataError, match=r"bomb.zip: the zip unpacks to 3.0 MB .*\(a zip bomb\?\)"):
        load_images_bytes(total, "bomb.zip", limits=limits)
    ratio = zipped({"a/1.png": png(grey()), "a/2.png": b"\0" * 2**20})
    with pytest.raises(DataError, match=r"bomb.zip: a/2.png: compressed [\d,]+ to 1, over the limit of 100 to 1"):
        load_images_bytes(ratio, "bomb.zip", limits=limits)


def test_a_member_that_lies_about_its_size_is_caught() -> None:
    first, second = png(grey()), png(grey(8, 7))
    honest = zipped({"a/1.png": first, "a/2.png": second}, zipfile.ZIP_STORED)
    declared = len(second).to_bytes(4, "little")
    assert honest.count(declared * 2) == 2  # the sizes (compressed, uncompressed) in its local and central headers
    lying = honest.replace(declared * 2, (len(second) - 10).to_bytes(4, "little") * 2)
    with pytest.raises(DataError, match=r"lie.zip: corrupt .zip archive \(BadZipFile: Bad CRC-32 for file 'a/2.png'\)"):
        load_images_bytes(lying, "lie.zip")


def test_upload_kind_and_loading_from_disk(tmp_path: object) -> None:
    assert is_image_upload(npy(np.zeros((3, 4, 4))), "a.npy")
    assert not is_image_upload(npy(np.zeros((3, 4))), "a.npy") and not is_image_upload(b"1,2\n", "a.csv")
    assert is_image_upload(b"anything", "a.zip")
    from pathlib import Path
    file = Path(str(tmp_path)) / "imgs.npy"
    file.write_bytes(npy(RNG.integers(0, 256, (4, 6, 6)).astype(np.uint8)))
    assert load_images(file).name.endswith("imgs.npy") and load_images(file).images.shape == (4, 1, 6, 6)
    with pytest.raises(DataError, match="missing.npy: file not found"):
        load_images(Path(str(tmp_path)) / "missing.npy")
