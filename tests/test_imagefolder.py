"""Image folders: every kind of image decodes, every kind of broken file is skipped."""

import io
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_cli import run_bench

from bench.data import imagefolder
from bench.errors import BenchError


def _save(image: Image.Image, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)


def good_images(folder, per_class=6):
    """Images of every mode, including an EXIF-rotated JPEG; returns how many."""
    rng = np.random.default_rng(0)
    count = 0
    for name, value in (("cats", 40), ("dogs", 220)):
        for i in range(per_class):
            base = np.full((20, 30, 3), value, np.uint8) + rng.integers(0, 20, (20, 30, 3),
                                                                        dtype=np.uint8)
            rgb = Image.fromarray(base)
            kind = i % 5
            if kind == 0:
                _save(rgb, folder / name / f"{i}.png")
            elif kind == 1:
                _save(rgb.convert("L"), folder / name / f"{i}.png")
            elif kind == 2:
                _save(rgb.convert("RGBA"), folder / name / f"{i}.png")
            elif kind == 3:
                _save(rgb.convert("P"), folder / name / f"{i}.gif")
            else:
                sixteen = Image.fromarray(base[..., 0].astype(np.uint16) * 256)
                _save(sixteen, folder / name / f"{i}.png")
            count += 1
        exif = Image.Exif()
        exif[0x0112] = 6  # rotated: the stored 30x20 image is upright 20x30
        _save(rgb, folder / name / "exif.jpg", exif=exif)
        count += 1
    return count


def broken_files(folder):
    (folder / "cats").mkdir(parents=True, exist_ok=True)
    (folder / "cats" / "empty.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), "red").save(buffer, "PNG")
    (folder / "cats" / "truncated.png").write_bytes(buffer.getvalue()[:60])
    (folder / "dogs" / "notes.jpg").write_text("this is not an image")
    Image.new("RGB", (300, 300)).save(folder / "dogs" / "bomb.png")
    return 4


def test_every_mode_decodes_to_rgb_and_exif_is_applied(tmp_path):
    good_images(tmp_path)
    for path in sorted(tmp_path.rglob("*.*")):
        assert imagefolder.decode(path, 16)[0].shape == (16, 16, 3)
    exif = tmp_path / "cats" / "exif.jpg"
    with Image.open(exif) as raw:
        assert raw.size == (30, 20)
    with Image.open(exif) as raw:
        from PIL import ImageOps

        assert ImageOps.exif_transpose(raw).size == (20, 30)


def test_sixteen_bit_pixels_are_scaled_from_0_to_65535_like_their_8_bit_copy(tmp_path):
    # v * 257 is the 16-bit value of the 8-bit value v (0 -> 0, 255 -> 65535).
    eight = np.random.default_rng(0).integers(0, 256, (8, 8), np.uint8)
    Image.fromarray(eight).save(tmp_path / "eight.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(tmp_path / "grey.png")
    Image.fromarray(np.full((8, 8), 1000, np.uint16)).save(tmp_path / "dark.tif")
    with Image.open(tmp_path / "sixteen.png") as opened:
        assert opened.mode.startswith("I")
    np.testing.assert_array_equal(imagefolder.decode(tmp_path / "sixteen.png", 8)[0],
                                  imagefolder.decode(tmp_path / "eight.png", 8)[0])
    assert (imagefolder.decode(tmp_path / "grey.png", 4)[0] == 128).all()  # 32768 * 255/65535
    assert (imagefolder.decode(tmp_path / "dark.tif", 4)[0] == 4).all()  # 1000 * 255/65535


def test_files_that_cannot_become_8_bit_rgb_are_skipped_and_counted(tmp_path):
    good_images(tmp_path, per_class=2)
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "cats" / "float.tif")
    # Found by a new user: 32-bit integers holding 0-255 were scaled as 16-bit (to 0-1).
    Image.fromarray(np.full((8, 8), 200, np.int32), mode="I").save(tmp_path / "dogs" / "i32.tif")
    with Image.open(tmp_path / "dogs" / "i32.tif") as opened:
        assert opened.mode == "I"
    os.symlink(tmp_path / "cats" / "gone.png", tmp_path / "dogs" / "broken.png")
    rng = np.random.default_rng(1)
    for name, suffix in (("cats", ".jfif"), ("dogs", ".ppm")):  # read, not left out
        pixels = rng.integers(0, 256, (8, 8, 3), np.uint8)
        Image.fromarray(pixels).save(tmp_path / name / f"more{suffix}",
                                     format="JPEG" if suffix == ".jfif" else "PPM")
    messages = []
    decoded = imagefolder.load_folder(tmp_path, size=8, cache_dir=None, log=messages.append)
    assert sorted(decoded.skipped) == sorted([str(tmp_path / "cats" / "float.tif"),
                                              str(tmp_path / "dogs" / "i32.tif"),
                                              str(tmp_path / "dogs" / "broken.png")])
    assert len(decoded.labels) == 2 * 3 + 2  # good_images gives per_class + 1 per class
    assert "skipped 3 unreadable image file(s)" in messages[0]
    # PGM beyond 8 bits also opens as mode "I", scaled by Pillow to 0-65535: it is read.
    (tmp_path / "cats" / "deep.pgm").write_bytes(b"P5 2 1 1023\n\x03\xff\x00\x00")
    assert imagefolder.decode(tmp_path / "cats" / "deep.pgm", 2)[0][0, :, 0].tolist() == \
        [255, 0]


def test_broken_files_are_skipped_with_one_warning_and_good_ones_all_used(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)  # 300x300 is then a bomb
    good = good_images(tmp_path)
    bad = broken_files(tmp_path)
    messages = []
    decoded = imagefolder.load_folder(tmp_path, size=16, cache_dir=tmp_path / "cache",
                                      log=messages.append)
    assert len(decoded.labels) == good
    assert len(decoded.skipped) == bad
    assert len(messages) == 1 and f"skipped {bad} unreadable image file(s)" in messages[0]
    assert decoded.class_names == ("cats", "dogs")
    assert decoded.images.dtype == np.uint8 and decoded.images.shape[1:] == (16, 16, 3)


def test_a_second_load_decodes_nothing(tmp_path, monkeypatch):
    count = good_images(tmp_path / "data")
    first = imagefolder.load_folder(tmp_path / "data", size=16, cache_dir=tmp_path / "cache")
    calls = []
    original = imagefolder.decode

    def counting(path, size):
        calls.append(path)
        return original(path, size)

    monkeypatch.setattr(imagefolder, "decode", counting)
    second = imagefolder.load_folder(tmp_path / "data", size=16, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first.images, second.images)
    assert calls == []
    # A changed file changes the key: the folder is decoded again.
    touched = tmp_path / "data" / "cats" / "0.png"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    imagefolder.load_folder(tmp_path / "data", size=16, cache_dir=tmp_path / "cache")
    assert len(calls) == count


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "does not exist"),
    (lambda root: (root / "only").mkdir(parents=True), r"has 1 class subfolder\(s\)"),
    (lambda root: [(root / c).mkdir(parents=True) for c in ("a", "b")], "holds no images"),
])
def test_bad_folders_are_user_errors(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(BenchError, match=message):
        imagefolder.load_folder(root, size=16, cache_dir=None)


def test_a_class_with_only_broken_files_is_a_user_error(tmp_path):
    good_images(tmp_path)
    (tmp_path / "empty-class").mkdir()
    (tmp_path / "empty-class" / "x.jpg").write_bytes(b"")
    (tmp_path / "empty-class" / "y.png").write_bytes(b"not really a png")
    with pytest.raises(BenchError) as refused:
        imagefolder.load_folder(tmp_path, size=16, cache_dir=None, log=lambda m: None)
    # Found by a new user: the files were not named.
    assert str(refused.value) == (
        f"class 'empty-class' under {tmp_path} has no readable image: its 2 file(s) could "
        "not be read or decoded as images (empty-class/x.jpg, empty-class/y.png); replace "
        "them with images Pillow can open, or remove the class")


@pytest.mark.slow
def test_a_run_on_a_folder_with_broken_files_completes(tmp_path, tiny_spaces_dir):
    data = tmp_path / "photos"
    good = good_images(data, per_class=10)
    bad = broken_files(data) - 1
    (data / "dogs" / "bomb.png").unlink()  # a bomb only under the lowered limit above
    result = run_bench("run", "--space", "tiny", "--spaces-dir", str(tiny_spaces_dir),
                       "--data", str(data), "--source-dataset", "digits", "--image-size",
                       "16", "--epochs", "1", "--repeats", "1", "--pretrain-epochs", "3",
                       "--results-dir", str(tmp_path / "results"), "--name", "folder")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"skipped {bad} unreadable image file(s)" in result.stderr
    rows = pd.read_csv(tmp_path / "results" / "folder" / "epochs.csv")
    assert len(rows) == 2
    import json

    run = json.loads((tmp_path / "results" / "folder" / "run.json").read_text())
    sizes = run["dataset"]
    assert sizes["train"] + sizes["validation"] + sizes["test"] == good
    # Per class: every class's good images (good_images makes 11 of each), each split's sum.
    counts = sizes["class_counts"]
    assert [sum(c) for c in zip(*counts.values())] == [good // 2, good // 2]
    assert [sum(counts[s]) for s in ("train", "validation", "test")] == [
        sizes["train"], sizes["validation"], sizes["test"]]
    assert sizes["skipped_files"] == bad and len(sizes["skipped_examples"]) == bad
    assert {p.rsplit("/", 1)[-1] for p in sizes["skipped_examples"]} == {
        "empty.jpg", "truncated.png", "notes.jpg"}
    assert run["pretraining"]["source"] == "digits"
    # The source task used is digits 0-4: 901 of the 1,797 scans (README), not the folder's.
    assert sizes["source"] == 901
    assert "data: source task from digits, 901 images" in result.stdout
    # Reading the folder is timed: the console line and run.json give the same seconds.
    assert 0 < sizes["seconds"] < 600
    line = next(line for line in result.stdout.splitlines() if line.startswith("data: folder"))
    assert line.endswith(f" ({sizes['seconds']:.1f} s)"), line
    report = (tmp_path / "results" / "folder" / "report.md").read_text()
    cats, dogs = ("/".join(str(counts[s][c]) for s in ("train", "validation", "test"))
                  for c in (0, 1))
    assert f"Images per class (train/validation/test): cats: {cats}, dogs: {dogs}. " in report
    assert "Source pretraining on the `digits` source task: 3 epochs, source accuracy" in report


@pytest.mark.slow
def test_a_source_dataset_is_asked_for_its_source_task_alone(tmp_path, tiny_spaces_dir):
    # Found by a new user: shapes as the source was held to its own target's default of
    # 20 training images a class ("--images-per-class 20 is too few for
    # --train-per-class 20"), an option given for neither.
    from bench.data.datasets import DataRequest, load_dataset

    good_images(tmp_path / "photos", per_class=10)
    result = run_bench("run", "--space", "tiny", "--spaces-dir", str(tiny_spaces_dir),
                       "--data", str(tmp_path / "photos"), "--source-dataset", "shapes",
                       "--images-per-class", "20", "--image-size", "16", "--epochs", "1",
                       "--repeats", "1", "--pretrain-epochs", "1",
                       "--results-dir", str(tmp_path / "results"), "--name", "shapes-source")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data: source task from shapes, 100 images" in result.stdout  # 5 shapes x 20
    # The source task alone is the one a whole load makes (its target left out).
    alone = load_dataset("shapes", DataRequest(image_size=16, images_per_class=20,
                                               source_only=True))
    whole = load_dataset("shapes", DataRequest(image_size=16, images_per_class=20,
                                               train_per_class=5))
    np.testing.assert_array_equal(alone.source.images, whole.source.images)
    np.testing.assert_array_equal(alone.source.labels, whole.source.labels)
    assert len(alone.train) == len(alone.validation) == len(alone.test) == 0


def test_a_folder_without_a_source_task_and_no_imagenet_weights_says_what_to_do(tmp_path,
                                                                               tiny_spaces_dir):
    good_images(tmp_path / "photos")
    result = run_bench("run", "--space", "tiny", "--spaces-dir", str(tiny_spaces_dir),
                       "--data", str(tmp_path / "photos"), "--image-size", "16",
                       "--results-dir", str(tmp_path / "results"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "has no source task to pretrain resnet-mini on" in result.stderr
    assert "--source-dataset" in result.stderr
    assert "data:" not in result.stdout + result.stderr  # refused before decoding
    results = tmp_path / "results"
    assert not results.exists() or not any(results.iterdir()), "no half-made run is left"
    # The other way out it gives works as given.
    assert "or train from random weights only with --init random" in result.stderr
    result = run_bench("run", "--space", "tiny", "--spaces-dir", str(tiny_spaces_dir),
                       "--data", str(tmp_path / "photos"), "--image-size", "16",
                       "--results-dir", str(results), "--init", "random", "--repeats", "1")
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_source_dataset_without_a_source_task_is_refused_before_any_data(tmp_path,
                                                                         tiny_spaces_dir):
    good_images(tmp_path / "photos")
    result = run_bench("run", "--space", "tiny", "--spaces-dir", str(tiny_spaces_dir),
                       "--data", str(tmp_path / "photos"), "--source-dataset", "folder",
                       "--image-size", "16", "--results-dir", str(tmp_path / "results"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("--source-dataset folder has no source task to pretrain on; use one that has: "
            "digits, shapes") in result.stderr
    assert "data:" not in result.stdout + result.stderr  # refused before decoding


def test_broken_links_and_link_loops_are_skipped_when_decodes_are_cached(tmp_path):
    # Found by a new user: the cache key read every file's size first, and a broken link
    # or a link loop stopped every command-line run (which always has a cache folder).
    good_images(tmp_path / "data", per_class=2)
    os.symlink(tmp_path / "data" / "cats" / "gone.png", tmp_path / "data" / "cats" / "broken.png")
    os.symlink("loop.png", tmp_path / "data" / "dogs" / "loop.png")
    messages = []
    decoded = imagefolder.load_folder(tmp_path / "data", size=8, cache_dir=tmp_path / "cache",
                                      log=messages.append)
    assert sorted(decoded.skipped) == [str(tmp_path / "data" / "cats" / "broken.png"),
                                       str(tmp_path / "data" / "dogs" / "loop.png")]
    assert len(decoded.labels) == 2 * 3
    assert "skipped 2 unreadable image file(s)" in messages[0]


def test_large_photos_decode_up_to_pillows_refusal_and_the_warning_says_the_limit(
        tmp_path, monkeypatch):
    # Found by a new user: Pillow's warning (from 89 megapixels, a 100-megapixel camera's
    # photo) was made a refusal, and the skip gave reasons that did not include size.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    good_images(tmp_path, per_class=1)
    Image.new("RGB", (120, 120), "red").save(tmp_path / "cats" / "large.png")  # 1.44x
    Image.new("RGB", (150, 150), "blue").save(tmp_path / "dogs" / "huge.png")  # 2.25x
    messages = []
    decoded = imagefolder.load_folder(tmp_path, size=8, cache_dir=None, log=messages.append)
    assert decoded.skipped == (str(tmp_path / "dogs" / "huge.png"),)
    assert "cats/large.png" in decoded.paths
    [warning] = messages
    assert "more than 20,000 pixels, Pillow's decompression-bomb limit" in warning


def test_a_class_whose_pictures_all_repeat_another_class_is_told_so(tmp_path):
    good_images(tmp_path, per_class=2)
    (tmp_path / "zebras").mkdir()
    for name in ("0.png", "1.png"):
        shutil.copy(tmp_path / "cats" / name, tmp_path / "zebras" / name)
    (tmp_path / "zebras" / "empty.png").write_bytes(b"")
    with pytest.raises(BenchError) as raised:
        imagefolder.load_folder(tmp_path, size=8, cache_dir=None, log=lambda m: None)
    assert str(raised.value) == (
        f"class 'zebras' under {tmp_path} has no picture of its own: 2 of its 3 file(s) "
        "repeat a picture kept under another class (the same bytes, or the same pixels) and "
        "1 is unreadable (zebras/0.png repeats cats/0.png; zebras/1.png repeats cats/1.png); "
        "check the class folders' contents")
    # Found by a reviewer: a byte copy of a file that was itself dropped as a pixel repeat
    # counted as unreadable, and repeated the dropped file rather than the one kept.
    (tmp_path / "zebras" / "empty.png").unlink()
    # The same pixels with an opaque alpha channel: other bytes, the same picture.
    Image.open(tmp_path / "cats" / "0.png").convert("RGBA").save(tmp_path / "zebras" / "0.png")
    assert (tmp_path / "zebras" / "0.png").read_bytes() != \
        (tmp_path / "cats" / "0.png").read_bytes()
    shutil.copy(tmp_path / "zebras" / "0.png", tmp_path / "zebras" / "9.png")
    with pytest.raises(BenchError) as raised:
        imagefolder.load_folder(tmp_path, size=8, cache_dir=None, log=lambda m: None)
    assert (": 3 of its 3 file(s) repeat a picture kept under another class (the same "
            "bytes, or the same pixels) (zebras/0.png repeats cats/0.png; zebras/1.png repeats "
            "cats/1.png; zebras/9.png repeats cats/0.png); check") in str(raised.value), \
        str(raised.value)
    # Opaque images with an alpha channel get no word on transparency.
    assert "transparent" not in str(raised.value)


def test_icons_drawn_only_in_transparency_are_told_their_alpha_is_not_read(tmp_path):
    # Found by a new user: black shapes on a transparent ground all read as one black
    # square, and the run said only that a class had "no readable image".
    for c, name in enumerate(("circle", "square")):
        (tmp_path / name).mkdir()
        for i in range(3):
            alpha = np.zeros((12, 12), np.uint8)
            alpha[2 + i:8 + i, 2 + c:6 + c * 3] = 255
            icon = np.dstack([np.zeros((12, 12, 3), np.uint8), alpha])
            Image.fromarray(icon, "RGBA").save(tmp_path / name / f"{i}.png")
    with pytest.raises(BenchError, match=r"class 'square' .* has no picture of its own: 3 of "
                                         r"its 3 file\(s\) .*; its images have transparent "
                                         r"pixels, and the alpha channel is not read"):
        imagefolder.load_folder(tmp_path, size=8, cache_dir=None, log=lambda m: None)


def test_the_console_headline_says_how_coarse_a_small_validation_split_is(tmp_path,
                                                                          tiny_spaces_dir):
    # Found by a new user: the report said so, the console's headline did not.
    good_images(tmp_path / "photos")
    result = run_bench("run", "--space", "tiny", "--spaces-dir", str(tiny_spaces_dir),
                       "--data", str(tmp_path / "photos"), "--source-dataset", "digits",
                       "--image-size", "16", "--pretrain-epochs", "1",
                       "--results-dir", str(tmp_path / "results"), "--name", "small")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "small" / "run.json").read_text())
    images = record["dataset"]["validation"]
    assert images < 100
    said = (f"The validation split has {images} images, so an execution's validation "
            f"accuracy moves in steps of 1/{images} = {1 / images:.3f}")
    headline = result.stdout.index("pretrained - random at epoch")
    assert said in result.stdout[headline:]
    assert said in (tmp_path / "results" / "small" / "report.md").read_text()
