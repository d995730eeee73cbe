"""Data as asked: folder layouts, options that apply, links, duplicates, skipped files and
bounds."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image
from test_cli import run_bench

from bench.data import imagefolder
from bench.data.datasets import DataRequest, load_dataset
from bench.errors import BenchError


def write_classes(folder, per_class, *, tag, classes=("cats", "dogs")):
    """``per_class`` distinct PNGs per class; ``tag`` keeps folders' images distinct."""
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.random.default_rng([tag, c, i]).integers(0, 256, (8, 8, 3), np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{tag}-{i}.png")


def load(root, tmp_path, **options):
    request = DataRequest(image_size=16, seed=1, data=root, cache_dir=tmp_path / "cache",
                          **options)
    return load_dataset("folder", request)


def decoded(folder):
    return imagefolder.load_folder(folder, size=16, cache_dir=None, log=lambda m: None)


@pytest.mark.parametrize("val_name", ["val", "valid", "validation"])
def test_train_and_val_are_the_splits_and_test_is_made_from_train(tmp_path, val_name):
    root = tmp_path / "data"
    write_classes(root / "train", 10, tag=1)
    write_classes(root / val_name, 3, tag=2)
    data = load(root, tmp_path)
    assert data.class_names == ("cats", "dogs")
    np.testing.assert_array_equal(data.validation.images, decoded(root / val_name).images)
    assert (len(data.train), len(data.test)) == (16, 4)  # 20% of 10 per class held out
    assert np.bincount(data.test.labels).tolist() == [2, 2]
    assert len(data.notes) == 1 and "no test/ folder" in data.notes[0]
    assert "is the test split" in data.notes[0]


def test_train_val_and_test_are_used_as_given(tmp_path):
    root = tmp_path / "data"
    for tag, (part, count) in enumerate({"train": 6, "val": 3, "test": 4}.items()):
        write_classes(root / part, count, tag=tag)
    data = load(root, tmp_path)
    assert (len(data.train), len(data.validation), len(data.test)) == (12, 6, 8)
    np.testing.assert_array_equal(data.test.images, decoded(root / "test").images)
    assert data.notes == () and data.duplicates_dropped == 0


def test_train_and_test_give_validation_from_train(tmp_path):
    root = tmp_path / "data"
    write_classes(root / "train", 10, tag=1)
    write_classes(root / "test", 3, tag=2)
    data = load(root, tmp_path)
    assert (len(data.train), len(data.validation), len(data.test)) == (16, 4, 6)
    assert "no val/ folder" in data.notes[0]


def test_train_alone_is_split_like_class_folders(tmp_path):
    write_classes(tmp_path / "a" / "train", 20, tag=1)
    write_classes(tmp_path / "b", 20, tag=1)
    split = load(tmp_path / "a", tmp_path)
    flat = load(tmp_path / "b", tmp_path)
    assert (len(split.train), len(split.validation), len(split.test)) == (28, 6, 6)
    for part in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(split, part).images, getattr(flat, part).images)
    assert "train/ only: split 70/15/15" in split.notes[0]
    assert flat.notes == (f"{tmp_path / 'b'} has class folders only: split 70/15/15 into train, "
                          "validation and test (28, 6 and 6 images: stratified, rounded per "
                          "class, seed 1)",)
    # 7 a class: 70% is 4.9 (5), 15% is 1.05 (1), the rest 1: 71/14/14, as the note says.
    write_classes(tmp_path / "c", 7, tag=1)
    small = load(tmp_path / "c", tmp_path)
    assert (len(small.train), len(small.validation), len(small.test)) == (10, 2, 2)
    assert "(10, 2 and 2 images: stratified" in small.notes[0]


@pytest.mark.parametrize("folders, message", [
    (["train", "cats"], r"has train/ and also cats/; beside train/ only"),
    (["test", "cats"], r"has test/ but no train/"),
    (["train", "val", "valid"], r"has val/ and valid/; keep one"),
])
def test_a_mixed_layout_is_a_user_error(tmp_path, folders, message):
    for tag, name in enumerate(folders):
        write_classes(tmp_path / "data" / name, 2, tag=tag)
    with pytest.raises(BenchError, match=message):
        load(tmp_path / "data", tmp_path)


def test_data_mistakes_name_the_class_and_the_folder(tmp_path):
    root = tmp_path / "data"
    write_classes(root / "train", 6, tag=1)
    write_classes(root / "test", 2, tag=2, classes=("cats",))
    with pytest.raises(BenchError, match=r"test has the classes \['cats'\], where train/ has "
                                         r"\['cats', 'dogs'\] \(lacks dogs\)"):
        load(root, tmp_path)
    small = tmp_path / "small"
    write_classes(small, 6, tag=1, classes=("cats",))
    write_classes(small, 2, tag=2, classes=("dogs",))
    with pytest.raises(BenchError) as caught:
        load(small, tmp_path)
    assert str(caught.value) == (f"class 'dogs' in {small} has 2 image(s); a split into 3 "
                                 "parts needs at least 3: add images to that class, or remove "
                                 "it from every split")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(BenchError, match=r"file.png is a file, not a folder"):
        load(tmp_path / "file.png", tmp_path)


def test_images_without_class_folders_are_said_to_be_outside_any_class(tmp_path):
    root = tmp_path / "flat"
    write_classes(tmp_path / "made", 3, tag=1)
    root.mkdir()
    for image in sorted((tmp_path / "made").rglob("*.png")):
        shutil.move(image, root / f"{image.parent.name}-{image.name}")
    with pytest.raises(BenchError, match=r"flat has 0 class subfolder\(s\) \(6 image file\(s\) "
                                         r"lie in it directly, outside any class subfolder"):
        load(root, tmp_path)


@pytest.mark.parametrize("folders", [
    ["training_set", "test_set"],  # Kaggle's cats and dogs
    ["Train", "Test"],
    ["seg_train/seg_train", "seg_test/seg_test"],  # a split folder inside a split folder
])
def test_split_folders_under_other_names_are_refused_not_read_as_classes(tmp_path, folders):
    for tag, name in enumerate(folders):
        write_classes(tmp_path / "data" / name, 2, tag=tag)
    top = sorted(name.split("/")[0] + "/" for name in folders)
    with pytest.raises(BenchError, match=f"has {', '.join(top)}, which look like split "
                                         "folders, not classes"):
        load(tmp_path / "data", tmp_path)


def test_split_folders_one_level_off_are_refused_with_where_they_belong(tmp_path):
    # Found by a new user: an archive unzipped into a folder of its own (data/dataset/
    # train, .../val) was "1 class subfolder(s)"; train/ and val/ inside each class folder
    # were pooled into the class and split again, the user's validation images trained on;
    # Train/ beside val/ and test/ was "no train/", Train/ unnamed.
    wrapped = tmp_path / "wrapped"
    for tag, split in enumerate(("train", "val")):
        write_classes(wrapped / "dataset" / split, 3, tag=tag)
    with pytest.raises(BenchError) as caught:
        load(wrapped, tmp_path)
    assert str(caught.value) == (f"{wrapped} holds one folder, dataset/, and it holds the "
                                 f"split folders train/, val/: pass --data {wrapped / 'dataset'}")
    assert len(load(wrapped / "dataset", tmp_path).train) == 4  # as told: 80% of 6 train
    # Misnamed splits in it are named in the same line, not in the next run's.
    (wrapped / "dataset" / "train").rename(wrapped / "dataset" / "Train")
    (wrapped / "dataset" / "val").rename(wrapped / "dataset" / "Val")
    with pytest.raises(BenchError) as caught:
        load(wrapped, tmp_path)
    assert str(caught.value) == (f"{wrapped} holds one folder, dataset/, and it holds the "
                                 f"split folders Train/, Val/: pass --data {wrapped / 'dataset'}, "
                                 "once Train/, Val/ are renamed train/, val/ (split folders are "
                                 "named in lower case)")
    for name in ("Train", "Val"):
        (wrapped / "dataset" / name).rename(wrapped / "dataset" / name.lower())
    assert len(load(wrapped / "dataset", tmp_path).train) == 4

    inverted = tmp_path / "inverted"
    for tag, split in enumerate(("train", "val")):
        for c, name in enumerate(("cats", "dogs")):
            write_classes(inverted / name, 3, tag=10 * tag + c, classes=(split,))
    with pytest.raises(BenchError) as caught:
        load(inverted, tmp_path)
    assert str(caught.value) == (
        f"class folder {inverted / 'cats'} holds train/, val/, which would be read as images "
        f"of class 'cats' and split again; put the split folders above the classes "
        f"({inverted}/train/cats/, {inverted}/val/cats/ ...), or rename those folders if they "
        "are not splits")
    # The same one level down, under train/.
    write_classes(tmp_path / "deep" / "train" / "cats", 3, tag=1, classes=("Test",))
    write_classes(tmp_path / "deep" / "train", 3, tag=2, classes=("dogs",))
    with pytest.raises(BenchError, match=r"class folder .*train/cats holds Test/, which"):
        load(tmp_path / "deep", tmp_path)

    capital = tmp_path / "capital"
    for tag, split in enumerate(("Train", "val", "test")):
        write_classes(capital / split, 3, tag=tag)
    with pytest.raises(BenchError) as caught:
        load(capital, tmp_path)
    assert str(caught.value) == (f"{capital} has test/, val/ but no train/; rename Train/ to "
                                 "train/ (split folders are named in lower case)")


def test_images_beside_the_class_folders_are_said_to_be_unused(tmp_path):
    write_classes(tmp_path / "data", 4, tag=0)
    for name in ("stray-b.png", "stray-a.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / "data" / name)
    data = load(tmp_path / "data", tmp_path)
    assert len(data.train) + len(data.validation) + len(data.test) == 8
    assert (f"2 image file(s) directly in {tmp_path / 'data'} (such as stray-a.jpg) are in "
            "no class folder and were not used") in data.notes


def test_class_names_with_split_words_are_classes_when_they_hold_images(tmp_path):
    # "test_tubes" holds images, "contest" holds folders but no split word.
    write_classes(tmp_path / "data", 4, tag=0, classes=("test_tubes", "beakers"))
    write_classes(tmp_path / "data" / "contest", 4, tag=1, classes=("a", "b"))
    data = load(tmp_path / "data", tmp_path)
    assert data.class_names == ("beakers", "contest", "test_tubes")


def test_train_per_class_takes_that_many_of_each_class_from_the_training_split(tmp_path):
    root = tmp_path / "data"
    write_classes(root / "train", 10, tag=1)
    write_classes(root / "test", 3, tag=2)
    full = load(root, tmp_path)
    three = load(root, tmp_path, train_per_class=3)
    assert np.bincount(three.train.labels).tolist() == [3, 3]
    np.testing.assert_array_equal(three.validation.images, full.validation.images)
    np.testing.assert_array_equal(three.test.images, full.test.images)
    # Every chosen image is one of the full training split's, and the same seed repeats.
    full_rows = {row.tobytes() for row in full.train.images}
    assert all(row.tobytes() in full_rows for row in three.train.images)
    again = load(root, tmp_path, train_per_class=3)
    np.testing.assert_array_equal(again.train.images, three.train.images)
    # Found by a new user: the split note said 16 training images while 6 trained.
    assert ("--train-per-class 3: 6 of the 16 training images train (3 per class, seed 1); "
            "the other 10 are not used") in three.notes
    assert not any("--train-per-class" in note
                   for note in load(root, tmp_path, train_per_class=8).notes)
    # 10 in train/, 2 of each class made the validation split: 8 (not 10) to take from.
    with pytest.raises(BenchError, match=r"--train-per-class 9: class 'cats' has only 8 "
                                         r"training image\(s\) in .*train, once its "
                                         r"validation images were set aside; use at most 8$"):
        load(root, tmp_path, train_per_class=9)


def test_train_per_class_beyond_what_digits_has_is_a_user_error():
    # Digits 5-9 have 174 to 182 scans each; 2 of each class stay for validation and test.
    with pytest.raises(BenchError, match=r"--train-per-class 1000 is too many: .* has 174 "
                                         r"images .* use at most 172"):
        load_dataset("digits", DataRequest(image_size=8, seed=1, train_per_class=1000))


def test_links_inside_the_folder_are_followed_and_links_leaving_it_refused(tmp_path):
    root = tmp_path / "data"
    write_classes(root, 3, tag=1)
    write_classes(root / ".store", 2, tag=2, classes=("more",))  # hidden: not a class
    os.symlink(root / ".store" / "more", root / "dogs" / "linked")
    os.symlink(root / "cats" / "1-0.png", root / "cats" / "again.png")
    data = load(root, tmp_path)
    assert len(data.train) + len(data.validation) + len(data.test) == 3 + 5
    assert data.duplicates_dropped == 1  # cats/again.png is cats/1-0.png

    outside = tmp_path / "elsewhere"
    write_classes(outside, 1, tag=3, classes=("x",))
    os.symlink(outside / "x" / "3-0.png", root / "cats" / "away.png")
    os.symlink(outside / "x", root / "dogs" / "away")
    with pytest.raises(BenchError, match=r"2 symbolic link\(s\) under .* lead outside it: .*"
                                         r"cats/away.png, .*dogs/away"):
        load(root, tmp_path)


def each_picture_in_one_split(data) -> bool:
    seen = {}
    for part in ("train", "validation", "test"):
        for row in getattr(data, part).images:
            seen.setdefault(row.tobytes(), set()).add(part)
    return all(len(parts) == 1 for parts in seen.values())


def test_identical_files_are_never_in_two_splits(tmp_path):
    root = tmp_path / "data"
    write_classes(root / "train", 10, tag=1)
    write_classes(root / "test", 3, tag=2)
    for i in range(2):  # two test images copied into train/
        shutil.copy(root / "test" / "dogs" / f"2-{i}.png", root / "train" / "dogs" / f"c{i}.png")
    shutil.copy(root / "train" / "cats" / "1-0.png", root / "train" / "cats" / "copy.png")
    data = load(root, tmp_path)
    assert data.duplicates_dropped == 3
    assert any("2 image(s)" in note and note.endswith(
        "dropped from the earlier one (train/dogs/c0.png repeats test/dogs/2-0.png; "
        "train/dogs/c1.png repeats test/dogs/2-1.png)")
               for note in data.notes)  # under the same class: no word on labels
    assert any(note.startswith(f"1 file(s) under {root / 'train'} repeat") for note in data.notes)
    assert each_picture_in_one_split(data)
    assert len(data.train) + len(data.validation) == 20 and len(data.test) == 6


def test_the_same_picture_in_another_format_is_never_in_two_splits(tmp_path):
    root = tmp_path / "data"
    write_classes(root / "train", 10, tag=1)
    write_classes(root / "test", 3, tag=2)
    # Two test pictures saved again into train/ as BMP and as PNG with a text chunk: other
    # bytes, the same pixels. One training picture is in train/ twice (PNG and BMP).
    from PIL import PngImagePlugin

    with Image.open(root / "test" / "dogs" / "2-0.png") as image:
        image.save(root / "train" / "dogs" / "again.bmp")
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "saved again")
    with Image.open(root / "test" / "cats" / "2-1.png") as image:
        image.save(root / "train" / "cats" / "tagged.png", pnginfo=info)
    with Image.open(root / "train" / "cats" / "1-0.png") as image:
        image.save(root / "train" / "cats" / "1-0.bmp")
    assert (root / "train" / "cats" / "tagged.png").read_bytes() != \
        (root / "test" / "cats" / "2-1.png").read_bytes()
    data = load(root, tmp_path)
    assert data.duplicates_dropped == 3
    assert each_picture_in_one_split(data)
    assert len(data.train) + len(data.validation) == 20 and len(data.test) == 6


@pytest.mark.parametrize("size", [4, 16])
def test_near_copies_are_other_pictures_at_every_image_size(tmp_path, size):
    root = tmp_path / "data"
    write_classes(root, 6, tag=1)
    pixels = np.asarray(Image.open(root / "cats" / "1-0.png"))
    edited = pixels.copy()
    edited[0, 0, 0] ^= 1  # one level in one pixel
    Image.fromarray(edited).save(root / "cats" / "edited.png")
    Image.fromarray(pixels).resize((16, 16), Image.NEAREST).save(root / "cats" / "larger.png")
    Image.fromarray(pixels).save(root / "cats" / "same.bmp")  # the one true copy
    folder = imagefolder.load_folder(root, size=size, cache_dir=None, log=lambda m: None)
    assert (folder.duplicates, len(folder.labels)) == (1, 12 + 2)


def test_a_picture_under_two_classes_is_said_to_need_its_labels_checked(tmp_path):
    root = tmp_path / "data"
    write_classes(root, 6, tag=1)
    with Image.open(root / "cats" / "1-0.png") as image:
        image.save(root / "dogs" / "mislabelled.bmp")
    data = load(root, tmp_path)
    assert data.duplicates_dropped == 1
    assert (f"1 file(s) under {root} repeat another file's picture (the same bytes, or the "
            "same pixels in another format) and were used once; 1 of them under another "
            "class than the copy kept, which keeps the first class in path order: check "
            "those labels (dogs/mislabelled.bmp (dogs) repeats cats/1-0.png (cats))") \
        in data.notes


def test_the_notes_name_the_files_dropped_for_repeating_a_picture(tmp_path):
    """Found by a new user: "1 file(s) ... were used once", and no word of which."""
    root = tmp_path / "data"
    write_classes(root, 6, tag=1)
    with Image.open(root / "cats" / "1-2.png") as image:
        image.save(root / "cats" / "copy of 1-2.bmp")
    shutil.copy(root / "dogs" / "1-0.png", root / "dogs" / "zz.png")
    data = load(root, tmp_path)
    assert data.duplicates_dropped == 2
    assert (f"2 file(s) under {root} repeat another file's picture (the same bytes, or the "
            "same pixels in another format) and were used once (cats/copy of 1-2.bmp repeats "
            "cats/1-2.png; dogs/zz.png repeats dogs/1-0.png)") in data.notes


def test_a_class_too_small_once_repeats_are_dropped_says_how_many_were(tmp_path):
    """Found by a new user: 4 files of one picture were refused as "has 1 image(s)"."""
    root = tmp_path / "data"
    write_classes(root, 6, tag=1, classes=("cats",))
    write_classes(root, 1, tag=2, classes=("dogs",))
    for i in range(3):
        shutil.copy(root / "dogs" / "2-0.png", root / "dogs" / f"copy{i}.png")
    with Image.open(root / "cats" / "1-0.png") as image:  # filed under dogs too
        image.save(root / "dogs" / "cat.bmp")
    for attempt in ("decoded", "cached"):
        with pytest.raises(BenchError) as caught:
            load(root, tmp_path)
        assert str(caught.value) == (
            f"class 'dogs' in {root} has 1 image(s) (not counting 4 of its files that repeat "
            "a picture read before: each picture is used once); a split into 3 parts needs "
            "at least 3: add images to that class, or remove it from every split"), attempt
    split = tmp_path / "split"
    write_classes(split / "train", 4, tag=3)
    write_classes(split / "val", 2, tag=4)
    shutil.copy(split / "train" / "cats" / "3-0.png", split / "train" / "cats" / "again.png")
    with pytest.raises(BenchError) as caught:
        load(split, tmp_path, train_per_class=4)
    # 4 in train/cats (and a copy of one), 1 of them set aside as the test split.
    assert str(caught.value) == (
        "--train-per-class 4: class 'cats' has only 3 training image(s) (not counting 1 of "
        "its files that repeat a picture read before: each picture is used once) in "
        f"{split / 'train'}, once its test images were set aside; use at most 3")


def test_a_class_too_small_counts_the_files_dropped_for_repeating_a_later_split(tmp_path):
    """Found in review: files dropped for repeating a validation picture went uncounted,
    so "has 1 image(s)" disagreed with the 4 files in the folder."""
    root = tmp_path / "data"
    write_classes(root / "train", 4, tag=1, classes=("cats",))
    write_classes(root / "train", 1, tag=2, classes=("dogs",))
    write_classes(root / "val", 2, tag=3)
    shutil.copy(root / "val" / "dogs" / "3-0.png", root / "train" / "dogs" / "a.png")
    shutil.copy(root / "val" / "dogs" / "3-1.png", root / "train" / "dogs" / "b.png")
    with pytest.raises(BenchError) as caught:
        load(root, tmp_path)
    # 3 files in train/dogs: 1 of its own, 2 copies of val/dogs pictures.
    assert str(caught.value) == (
        f"class 'dogs' in {root / 'train'} has 1 image(s) (not counting 2 of its files that "
        "repeat a picture of a later split (train < validation < test): each picture is "
        "used once); a split into 2 parts needs at least 2: add images to that class, or "
        "remove it from every split")
    shutil.copy(root / "train" / "dogs" / "2-0.png", root / "train" / "dogs" / "c.png")
    write_classes(root / "train", 2, tag=4, classes=("dogs",))
    with pytest.raises(BenchError) as caught:
        load(root, tmp_path, train_per_class=3)
    # 6 files in train/dogs: 3 pictures of its own (1 of them then set aside as the test
    # split), a copy of one of them, 2 copies of val/dogs pictures.
    assert str(caught.value) == (
        "--train-per-class 3: class 'dogs' has only 2 training image(s) (not counting 1 of "
        "its files that repeat a picture read before and 2 that repeat a picture of a later "
        "split (train < validation < test): each picture is used once) in "
        f"{root / 'train'}, once its test images were set aside; use at most 2")


def test_a_picture_in_two_splits_under_two_classes_is_said_to_need_its_labels_checked(
        tmp_path):
    """Found by a new user: dropped from train without a word about its labels."""
    root = tmp_path / "data"
    write_classes(root / "train", 6, tag=1)
    write_classes(root / "val", 2, tag=2)
    write_classes(root / "test", 2, tag=3)
    shutil.copy(root / "test" / "dogs" / "3-0.png", root / "train" / "cats" / "x.png")
    shutil.copy(root / "test" / "dogs" / "3-1.png", root / "train" / "dogs" / "y.png")
    shutil.copy(root / "test" / "cats" / "3-0.png", root / "val" / "dogs" / "z.png")
    data = load(root, tmp_path)
    assert (f"3 image(s) in {root} repeat an image of a later split (train < validation < "
            "test) and were dropped from the earlier one (train/dogs/y.png repeats "
            "test/dogs/3-1.png); 2 of them under another class "
            "there: check those labels (train/cats/x.png (cats) repeats test/dogs/3-0.png "
            "(dogs); val/dogs/z.png (dogs) repeats test/cats/3-0.png (cats))") in data.notes
    assert each_picture_in_one_split(data)


def test_a_class_whose_training_images_all_repeat_test_images_is_a_user_error(tmp_path):
    root = tmp_path / "data"
    write_classes(root / "train", 4, tag=1)
    write_classes(root / "val", 2, tag=2)
    write_classes(root / "test", 4, tag=3)
    shutil.rmtree(root / "train" / "dogs")
    shutil.copytree(root / "test" / "dogs", root / "train" / "dogs")
    with pytest.raises(BenchError, match=r"class 'dogs' has no training image left in .*train"):
        load(root, tmp_path)


def test_images_loose_in_a_split_folder_are_said_to_be_unused(tmp_path):
    root = tmp_path / "data"
    write_classes(root / "train", 6, tag=1)
    write_classes(root / "test", 2, tag=2)
    shutil.copy(root / "train" / "cats" / "1-0.png", root / "train" / "stray.png")
    data = load(root, tmp_path)
    assert any(f"1 image file(s) directly in {root / 'train'} (such as stray.png) are in no "
               "class folder and were not used" in note for note in data.notes)


def test_the_walk_does_not_depend_on_the_order_folders_are_listed_in(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_classes(root, 3, tag=1)
    (root / "cats" / "z").mkdir()
    for name in ("1-0.png", "1-1.png"):
        shutil.move(root / "cats" / name, root / "cats" / "z" / name)
    os.symlink(root / "cats" / "z", root / "cats" / "alias")  # one folder, two paths
    walk = os.walk

    def listed(order):
        def walk_in_order(*args, **kwargs):
            for top, dirs, names in walk(*args, **kwargs):
                dirs.sort(reverse=order == "descending")  # in place: the walk follows it
                yield top, dirs, names
        monkeypatch.setattr(imagefolder.os, "walk", walk_in_order)
        return imagefolder.list_images(imagefolder.class_folders(root), root)

    ascending, descending = listed("ascending"), listed("descending")
    assert ascending == descending
    assert len(ascending) == 6  # the linked folder's two images once


def test_skipped_files_are_reported_on_every_load_the_cached_one_too(tmp_path, capsys):
    root = tmp_path / "data"
    write_classes(root, 4, tag=1)
    (root / "cats" / "broken.png").write_bytes(b"not a png")
    for _ in range(2):
        data = load(root, tmp_path)
        assert data.skipped_files == (str(root / "cats" / "broken.png"),)
        assert "skipped 1 unreadable image file(s)" in capsys.readouterr().err
        assert "1 unreadable file(s) skipped" in data.summary()


def test_running_out_of_memory_while_decoding_says_so(tmp_path, monkeypatch):
    write_classes(tmp_path / "data", 2, tag=1)

    def no_memory(path, size):
        raise MemoryError

    monkeypatch.setattr(imagefolder, "decode", no_memory)
    # A reviewer's point: an image is decoded at its own size (write_classes makes 8x8).
    with pytest.raises(BenchError, match=r"ran out of memory decoding .*\.png \(8x8 px, "
                                         r"decoded at that size before resizing\) after 0 "
                                         r"images at 16x16 px: shrink or remove that image, or "
                                         r"use a smaller --image-size or fewer images$"):
        imagefolder.load_folder(tmp_path / "data", size=16, cache_dir=None)


def test_a_memory_estimate_refuses_what_cannot_fit():
    # 1,000 images at 512 px: 2 x 1000 x 512 x 512 x 3 bytes = 1.46 GiB.
    imagefolder.check_memory(1000, 512, what="x", available=2 * 2**30)
    with pytest.raises(BenchError, match=r"x: 1000 images at 512x512 px need about 1.5 GiB "
                                         r"of memory and 1.0 GiB is available"):
        imagefolder.check_memory(1000, 512, what="x", available=2**30)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "digits", "--data", "."], "--data does not apply to dataset 'digits'"),
    (["--dataset", "digits", "--images-per-class", "10"],
     "--images-per-class does not apply to dataset 'digits'; it is for shapes"),
    (["--data-dir", "."], "--data-dir does not apply to dataset 'digits'; it is for hotdog"),
    (["--image-size", "100000"], "--image-size 100000 is too large"),
])
def test_options_that_do_not_apply_and_sizes_out_of_bounds_are_refused(tmp_path, args,
                                                                       message):
    result = run_bench("run", *args, "--results-dir", str(tmp_path / "results"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    assert not (tmp_path / "results").exists()


def test_class_names_match_across_splits_in_either_unicode_form(tmp_path):
    """Found by a new user: train/café written composed and test/café decomposed (as
    macOS writes it) were refused as different classes; ordered by their raw names, the
    labels of the two splits could also come out swapped."""
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    root = tmp_path / "data"
    for split, name, count in (("train", composed, 8), ("test", decomposed, 3)):
        for folder, channel in ((name, 0), ("cafz", 2)):
            (root / split / folder).mkdir(parents=True)
            for i in range(count):
                pixels = np.zeros((8, 8, 3), np.uint8)
                pixels[..., channel] = 100 + 10 * i + (split == "test")
                Image.fromarray(pixels).save(root / split / folder / f"{i}.png")
    data = load(root, tmp_path)
    assert data.class_names == ("cafz", composed)  # "é" sorts after "z"
    for part in ("train", "validation", "test"):
        split = getattr(data, part)
        red = split.images[..., 0].mean(axis=(1, 2)) > 0  # the café images are red
        assert np.array_equal(split.labels == 1, red), part

    # Both forms as two folders of one split would be one class name twice: refused.
    (root / "test" / composed).mkdir()
    with pytest.raises(BenchError, match="two class folders named 'caf\u00e9', written in two "
                                         "Unicode forms"):
        load(root, tmp_path)


def test_hidden_files_and_a_macos_zips_folders_are_not_data(tmp_path):
    # Found by a new user: train/dog/.hidden.png was a dog image. macOS writes ._NAME
    # beside every file it copies onto some disks (metadata, not a picture) and zips a
    # __MACOSX/ folder of them: neither is read, at the top or in a class folder.
    root = tmp_path / "data"
    write_classes(root / "train", 10, tag=1)
    write_classes(root / "val", 3, tag=2)
    expected = load(root, tmp_path / "clean")
    for folder in (root / "train" / "cats", root / "val" / "dogs"):
        (folder / "._cats-0.png").write_bytes(b"\x00\x05\x16\x07 Mac OS X metadata")
        (folder / ".thumbnails").mkdir()
        shutil.copy(next(folder.glob("*.png")), folder / ".thumbnails" / "small.png")
    write_classes(root / "train", 1, tag=3, classes=(".hidden",))
    shutil.copy(root / "train" / "dogs" / "1-0.png", root / "train" / "cats" / ".copy.png")
    write_classes(root / "__MACOSX", 2, tag=4, classes=("train",))
    (root / ".notes.png").write_bytes(b"not an image")
    data = load(root, tmp_path / "hidden")
    assert data.class_names == expected.class_names == ("cats", "dogs")
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(data, split).images,
                                      getattr(expected, split).images)
        np.testing.assert_array_equal(getattr(data, split).labels,
                                      getattr(expected, split).labels)
    assert data.skipped_files == () and data.notes == expected.notes
    assert data.duplicates_dropped == 0
    # Nor is a hidden file counted among the images that lie outside any class.
    lone = tmp_path / "lone"
    write_classes(lone, 3, tag=5, classes=("cats",))
    (lone / "._x.png").write_bytes(b"\0\5\26\7")
    (lone / "y.png").write_bytes((lone / "cats" / "5-0.png").read_bytes())
    with pytest.raises(BenchError, match=r"has 1 class subfolder\(s\) \(1 image file\(s\) lie"):
        load(lone, tmp_path / "lone-cache")


def test_every_format_pillow_opens_is_read_and_other_files_are_counted(tmp_path):
    # Found by a new user: a fixed list of extensions left .tga, .pcx, .sgi (and .avif,
    # .jp2) photos out without a word, and a JPEG saved without an extension too.
    root = tmp_path / "data"
    write_classes(root, 4, tag=1)
    pixels = lambda i: np.full((8, 8, 3), 40 * i + 20, np.uint8)  # noqa: E731
    for i, name in enumerate(["a.tga", "b.pcx", "c.sgi", "d.TGA"]):
        Image.fromarray(pixels(i)).save(root / "cats" / name)
    Image.fromarray(pixels(4)).save(root / "cats" / "photo", format="JPEG")
    Image.fromarray(pixels(5)).save(root / "dogs" / "big.jpg_large", format="JPEG")
    (root / "dogs" / "notes.txt").write_text("not a picture")
    (root / "dogs" / ".DS_Store").write_bytes(b"\0")  # hidden: not data, not counted
    # Formats Pillow recognises but does not decode here (from review): not images either.
    for name in ("model.h5", "clip.mpg", "drawing.wmf"):
        (root / "dogs" / name).write_bytes(b"\0" * 64)
    folder = decoded(root)
    assert np.bincount(folder.labels).tolist() == [4 + 4, 4]
    assert folder.skipped == ()
    assert sorted(folder.not_images) == [
        "cats/photo", "dogs/big.jpg_large", "dogs/clip.mpg", "dogs/drawing.wmf",
        "dogs/model.h5", "dogs/notes.txt"]
    data = load(root, tmp_path)
    assert len(data.train) + len(data.validation) + len(data.test) == 12
    said = [n for n in data.notes if "not of an image format" in n]
    assert said == [f"6 file(s) under {root} are not of an image format Pillow opens, by "
                    "their extension, and were not read (cats/photo, dogs/big.jpg_large, "
                    "dogs/clip.mpg, ...)"]
    from PIL import EpsImagePlugin  # EPS decodes only through Ghostscript

    assert (".eps" in imagefolder.image_extensions()) == EpsImagePlugin.has_ghostscript()


@pytest.mark.parametrize(("per_class", "counts"), [(10, [7, 2, 1]), (7, [5, 1, 1]),
                                                   (20, [14, 3, 3])])
def test_each_class_is_split_70_15_15_in_whole_images_as_readme_says(per_class, counts):
    from bench.data.datasets import split_fractions

    labels = np.repeat(np.arange(3), per_class)
    parts = split_fractions(labels, (0.7, 0.15, 0.15), 1)
    for label in range(3):  # by hand: round(0.7 n), round(0.15 n), the rest
        assert [int((labels[p] == label).sum()) for p in parts] == counts


def test_data_without_a_dataset_is_the_folder_dataset(tmp_path):
    # README: `--data PATH` without `--dataset` means `--dataset folder`.
    from bench.plan import plan_study
    from bench.runner import RunSpec

    write_classes(tmp_path / "data", 4, tag=0)
    plan = plan_study(RunSpec(space="init", data=tmp_path / "data", init="random",
                              results_dir=tmp_path / "results"), new=True)
    assert plan.settings.dataset == "folder"
