"""Reading awkward images, the dataset's errors and skips, augmentation, the sampler and the split rule."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_style.data.dataset import DataError, UnpairedDataset, UnpairedSampler, build_transform, find_images
from gan_style.data.splits import panel_split
from gan_style.io.images import ImageReadError, read_rgb


def gradient(w: int, h: int) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :].repeat(h, 0)
    return np.stack([x, x[::-1, ::-1], np.full_like(x, 90)], -1).astype(np.uint8)  # (h, w, 3)


@pytest.fixture()
def awkward(tmp_path) -> dict[str, Path]:
    """One file of each awkward kind a user may have."""
    paths = {}
    rgb = Image.fromarray(gradient(60, 40))
    paths["gray"] = tmp_path / "gray.png"
    rgb.convert("L").save(paths["gray"])
    paths["rgba"] = tmp_path / "rgba.png"
    rgba = rgb.convert("RGBA")
    alpha = np.full((40, 60), 255, np.uint8)
    alpha[:, :30] = 0  # left half fully transparent
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(paths["rgba"])
    paths["palette"] = tmp_path / "palette.png"
    rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(paths["palette"])
    paths["gray16"] = tmp_path / "gray16.png"
    g16 = np.zeros((40, 60), np.uint16)
    g16[:, 30:] = 65535
    g16[:, 15:30] = 32896  # 128 * 257
    Image.fromarray(g16).save(paths["gray16"])
    paths["exif"] = tmp_path / "exif.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    rgb.save(paths["exif"], exif=exif, quality=95)
    paths["tiny"] = tmp_path / "tiny.jpg"
    rgb.resize((12, 8)).save(paths["tiny"])
    paths["truncated"] = tmp_path / "truncated.jpg"
    rgb.save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    paths["truncated"].write_bytes(data[: len(data) // 3])
    paths["text"] = tmp_path / "notes.png"
    paths["text"].write_text("this is not an image")
    return paths


def test_grayscale_and_palette_become_rgb(awkward):
    for kind in ("gray", "palette"):
        img = read_rgb(awkward[kind])
        assert img.mode == "RGB" and img.size == (60, 40)
    g = np.asarray(read_rgb(awkward["gray"]))
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()


def test_rgba_transparent_pixels_become_white(awkward):
    arr = np.asarray(read_rgb(awkward["rgba"]))
    assert arr.shape == (40, 60, 3)
    assert (arr[:, :30] == 255).all()  # transparent half
    assert not (arr[:, 30:] == 255).all()  # opaque half keeps its colours


def test_16bit_grayscale_is_scaled_not_clipped(awkward):
    arr = np.asarray(read_rgb(awkward["gray16"]))[..., 0]
    assert arr[0, 0] == 0 and arr[0, 59] == 255
    assert abs(int(arr[0, 20]) - 128) <= 1  # half scale stays mid-grey (clipping would give 255)


def test_exif_rotation_is_applied(awkward):
    img = read_rgb(awkward["exif"])
    assert img.size == (40, 60)  # width and height swapped: upright as a viewer shows it


def test_unreadable_files_name_the_file(awkward):
    for kind in ("truncated", "text"):
        with pytest.raises(ImageReadError, match=awkward[kind].name):
            read_rgb(awkward[kind])
    with pytest.raises(ImageReadError, match="not found"):
        read_rgb(awkward["text"].with_name("missing.png"))


def make_domain(folder: Path, images: list[np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for i, arr in enumerate(images):
        Image.fromarray(arr).save(folder / f"{i:03d}.png")


def test_dataset_reads_every_awkward_kind_to_crop_size(tmp_path, awkward):
    root = tmp_path / "ds"
    (root / "trainA").mkdir(parents=True)
    for kind in ("gray", "rgba", "palette", "gray16", "exif", "tiny"):
        awkward[kind].rename(root / "trainA" / awkward[kind].name)
    make_domain(root / "trainB", [gradient(50, 50)])
    ds = UnpairedDataset(root, build_transform("resize_and_crop", 36, 32, flip=True))
    for i in range(len(ds)):
        item = ds[(i, 0, i)]
        assert item["A"].shape == (3, 32, 32) and item["B"].shape == (3, 32, 32)
        assert item["A"].min() >= -1 and item["A"].max() <= 1 and item["skipped"] == ""


@pytest.mark.parametrize("preprocess", ["crop", "scale_shortside_and_crop"])
def test_images_smaller_than_crop_are_padded(tmp_path, preprocess):
    root = tmp_path / "ds"
    make_domain(root / "trainA", [gradient(12, 8)])
    make_domain(root / "trainB", [gradient(100, 20)])
    ds = UnpairedDataset(root, build_transform(preprocess, 24, 32, flip=False))
    item = ds[(0, 0, 0)]
    assert item["A"].shape == (3, 32, 32) and item["B"].shape == (3, 32, 32)


def test_preprocess_none_keeps_size_padded_to_multiple_of_4(tmp_path):
    root = tmp_path / "ds"
    make_domain(root / "trainA", [gradient(30, 21)])
    make_domain(root / "trainB", [gradient(32, 32)])
    item = UnpairedDataset(root, build_transform("none", 0 + 1, 4, flip=False))[(0, 0, 0)]
    assert item["A"].shape == (3, 24, 32)


def test_bad_file_is_skipped_and_named(tmp_path, awkward):
    root = tmp_path / "ds"
    make_domain(root / "trainA", [gradient(40, 40), gradient(40, 40)])
    awkward["truncated"].rename(root / "trainA" / "001.png")  # replaces the second image
    make_domain(root / "trainB", [gradient(40, 40)])
    ds = UnpairedDataset(root, build_transform("resize_and_crop", 36, 32, flip=False))
    item = ds[(1, 0, 0)]
    assert "001.png" in item["skipped"] and item["A_path"].endswith("000.png")
    assert ds[(1, 0, 0)]["skipped"] == ""  # known-bad files are not retried (or re-reported)


def test_missing_and_empty_folders_are_explained(tmp_path):
    with pytest.raises(DataError, match=r"ds/trainA does not exist.*trainA and <root>/trainB"):
        find_images(tmp_path / "ds" / "trainA")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match="holds no images"):
        find_images(tmp_path / "empty")


def test_augmentation_is_seeded_per_sample(tmp_path):
    root = tmp_path / "ds"
    make_domain(root / "trainA", [gradient(64, 64)])
    make_domain(root / "trainB", [gradient(64, 64)])
    ds = UnpairedDataset(root, build_transform("resize_and_crop", 48, 32, flip=True))
    crops = [ds[(0, 0, seed)]["A"] for seed in range(8)]
    assert torch.equal(ds[(0, 0, 3)]["A"], crops[3])  # same seed, same crop and flip
    assert len({tuple(c.flatten()[:50].tolist()) for c in crops}) > 1  # different seeds differ


def test_sampler_epoch_covers_a_and_resumes_mid_epoch():
    s = UnpairedSampler(n_a=5, n_b=3, seed=0)
    s.set_epoch(0)
    items = list(s)
    assert len(items) == 5 and sorted(a for a, _, _ in items) == [0, 1, 2, 3, 4]
    assert all(0 <= b < 3 for _, b, _ in items)
    s.set_epoch(0, start=2)
    assert list(s) == items[2:] and len(s) == 3
    s.set_epoch(1)
    assert [a for a, _, _ in s] != [a for a, _, _ in items]  # reshuffled each epoch


def test_sampler_epoch_length_is_max_of_domains():
    s = UnpairedSampler(n_a=2, n_b=7, seed=0)
    s.set_epoch(0)
    items = list(s)
    assert len(items) == 7 and {a for a, _, _ in items} == {0, 1}


def test_sampler_shards_over_ranks_without_overlap():
    shards = []
    for rank in range(2):
        s = UnpairedSampler(n_a=10, n_b=4, seed=3, rank=rank, world_size=2)
        s.set_epoch(0)
        shards.append(list(s))
    assert len(shards[0]) == len(shards[1]) == 5
    assert sorted(a for shard in shards for a, _, _ in shard) == list(range(10))
    seeds = [seed for shard in shards for _, _, seed in shard]
    assert len(set(seeds)) == 10  # each global position has its own augmentation seed


def test_panel_split_is_test_only_when_every_asked_domain_has_a_test_folder(tmp_path):
    for name in ("trainA", "trainB", "testA"):
        (tmp_path / name).mkdir()
    (tmp_path / "testB").write_text("a file, not a folder")
    assert panel_split(tmp_path) == "train"  # testB is no folder: both domains fall back together
    assert panel_split(tmp_path, "A") == "test" and panel_split(tmp_path, "B") == "train"
    (tmp_path / "testB").unlink()
    (tmp_path / "testB").mkdir()
    assert panel_split(str(tmp_path)) == "test" and panel_split(tmp_path, "B") == "test"
    assert panel_split(tmp_path / "nowhere") == "train"
