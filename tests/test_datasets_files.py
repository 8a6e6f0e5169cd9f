"""Real datasets from disk: fixtures in the exact published formats run the real parsers."""
from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
from support.dataset_files import (tar_gz, write_celeba, write_cifar, write_idx, write_image_folder, write_mnist,
                              zip_bytes)

from benchbase.blame import PluginFault
from benchbase.config import plugin_config
from benchbase.data import DataCatalog
from benchbase.errors import BenchbaseInputError, MissingDataError
from benchbase_plugins.datasets import celeba as celeba_mod
from benchbase_plugins.datasets import cifar10 as cifar_mod
from benchbase_plugins.datasets import files
from benchbase_plugins.datasets import mnist as mnist_mod


def load(registry, name: str, **config):
    reg = registry.get("dataset", name)
    obj, plain = plugin_config(reg, config, "<test>", "config")
    return DataCatalog().load(reg, obj, plain)[1]  # a private catalog: checks the splits, no sharing


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ------------------------------------------------------------------------ MNIST


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_idx_in_torchvision_layout(registry, tmp_path, monkeypatch, gz, name, folder):
    arrays = write_mnist(tmp_path / folder / "raw", gz=gz)
    monkeypatch.setenv("BENCHBASE_DATA", str(tmp_path))
    s = load(registry, name)
    assert s.train.dtype == np.float32 and s.train.shape == (60, 1, 28, 28) and s.test.shape == (20, 1, 28, 28)
    np.testing.assert_allclose(s.train[:, 0], arrays["train_images"] / 127.5 - 1, atol=1e-6)
    assert s.train_labels.dtype == np.int64
    np.testing.assert_array_equal(s.test_labels, arrays["test_labels"])
    assert s.spec.modality == "image" and s.spec.num_classes == 10 and s.spec.shape == (1, 28, 28)
    assert s.train.min() >= -1 and s.train.max() <= 1


def test_mnist_explicit_root_holding_the_files_and_padding(registry, tmp_path):
    arrays = write_mnist(tmp_path / "anywhere", gz=False)
    s = load(registry, "mnist", root=str(tmp_path / "anywhere"), pad=2)
    assert s.spec.shape == (1, 32, 32)
    np.testing.assert_allclose(s.train[:, 0, 2:30, 2:30], arrays["train_images"] / 127.5 - 1, atol=1e-6)
    assert np.all(s.train[:, :, :2] == -1) and np.all(s.train[:, :, :, -2:] == -1)


def test_shared_data_folder_does_not_mix_mnist_and_fashion(registry, tmp_path, monkeypatch):
    write_mnist(tmp_path, gz=True)  # files loose in $BENCHBASE_DATA: ambiguous, so not used
    monkeypatch.setenv("BENCHBASE_DATA", str(tmp_path))
    with pytest.raises(MissingDataError):
        load(registry, "fashion_mnist")


def test_idx_with_a_bad_magic_number_is_a_clear_error(registry, tmp_path):
    write_mnist(tmp_path, gz=False)
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(BenchbaseInputError, match="not an IDX file"):
        load(registry, "mnist", root=str(tmp_path))


def test_idx_labels_and_images_must_agree(registry, tmp_path):
    write_mnist(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(7, np.uint8), gz=False)
    with pytest.raises(BenchbaseInputError, match="N uint8 labels"):
        load(registry, "mnist", root=str(tmp_path))


def test_missing_mnist_names_path_files_and_download(registry, tmp_path):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    write_idx(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", np.zeros((2, 28, 28)), gz=True)
    with pytest.raises(MissingDataError) as err:
        load(registry, "mnist", root=str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg
    for f in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert f in msg
    assert "lacks train-labels-idx1-ubyte" in msg  # the partly filled folder says what is missing
    assert "download: true" in msg and "BENCHBASE_DATA" in msg


def test_mnist_download_is_wired_to_the_canonical_urls(registry, tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_mnist(src, gz=True)
    served = {f.name: f.read_bytes() for f in src.iterdir()}
    monkeypatch.setattr(mnist_mod.MNIST, "resources", tuple(
        files.Resource(r.filename, r.url, md5(served[r.filename])) for r in mnist_mod.MNIST.resources))
    fetched = []

    def fake_fetch(url, dest):
        fetched.append(url)
        dest.write_bytes(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(files, "fetch", fake_fetch)
    s = load(registry, "mnist", root=str(tmp_path / "data"), download=True)
    assert len(s.train) == 60
    assert sorted(fetched) == sorted("https://ossci-datasets.s3.amazonaws.com/mnist/" + f for f in served)
    assert (tmp_path / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
    fetched.clear()
    load(registry, "mnist", root=str(tmp_path / "data"), download=True)
    assert fetched == []  # present and verified: nothing fetched again


def test_download_checksum_mismatch_is_an_error_and_leaves_nothing(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "fetch", lambda url, dest: dest.write_bytes(b"not the published file"))
    with pytest.raises(files.ChecksumError, match="checksum mismatch.*f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        load(registry, "mnist", root=str(tmp_path), download=True)
    assert not list((tmp_path / "MNIST" / "raw").iterdir())


def test_download_network_failure_says_how_to_fetch_by_hand(registry, tmp_path, monkeypatch):
    def offline(url, dest):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(files, "fetch", offline)
    with pytest.raises(MissingDataError, match="could not download .*by hand"):
        load(registry, "fashion_mnist", root=str(tmp_path), download=True)


# ------------------------------------------------------------------------ CIFAR-10


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_pickled_batches(registry, tmp_path, protocol):
    batches = write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    s = load(registry, "cifar10", root=str(tmp_path))
    assert s.train.shape == (40, 3, 32, 32) and s.test.shape == (6, 3, 32, 32) and s.train.dtype == np.float32
    first = batches["data_batch_1"]
    np.testing.assert_allclose(s.train[0], first[b"data"][0].reshape(3, 32, 32) / 127.5 - 1, atol=1e-6)
    expected = np.concatenate([batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)])
    np.testing.assert_array_equal(s.train_labels, expected)
    np.testing.assert_array_equal(s.test_labels, batches["test_batch"][b"labels"])
    assert s.spec.num_classes == 10 and s.spec.shape == (3, 32, 32)


def test_cifar_refuses_to_unpickle_anything_else(registry, tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    target = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os
            return os.mkdir, (str(target),)

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Payload(), b"labels": []}, f, protocol=2)
    with pytest.raises(BenchbaseInputError, match="refusing to load .*mkdir"):
        load(registry, "cifar10", root=str(tmp_path))
    assert not target.exists()


def test_cifar_wrong_layout_is_a_clear_error(registry, tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}, f)
    with pytest.raises(BenchbaseInputError, match=r"shape \(N, 3072\)"):
        load(registry, "cifar10", root=str(tmp_path))


def test_missing_cifar_names_path_and_batches(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBASE_DATA", str(tmp_path))
    with pytest.raises(MissingDataError) as err:
        load(registry, "cifar10")
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg
    assert "data_batch_1" in msg and "test_batch" in msg and "download: true" in msg


def test_cifar_download_unpacks_the_archive(registry, tmp_path, monkeypatch):
    src = tmp_path / "src" / "cifar-10-batches-py"
    write_cifar(src)
    archive = tar_gz({f"cifar-10-batches-py/{p.name}": p for p in src.iterdir()})
    monkeypatch.setattr(cifar_mod, "ARCHIVE", files.Resource("cifar-10-python.tar.gz", cifar_mod.URL,
                                                             md5(archive), extract=True))
    urls = []
    monkeypatch.setattr(files, "fetch", lambda url, dest: (urls.append(url), dest.write_bytes(archive)))
    s = load(registry, "cifar10", root=str(tmp_path / "data"), download=True)
    assert len(s.train) == 40 and urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]


# ------------------------------------------------------------------------ CelebA


def test_celeba_crop_resize_and_partition(registry, tmp_path):
    levels = write_celeba(tmp_path / "celeba")
    s = load(registry, "celeba", root=str(tmp_path), size=16, crop=140)
    assert s.train.shape == (5, 3, 16, 16) and s.test.shape == (2, 3, 16, 16) and s.train.dtype == np.float32
    assert s.train_labels is None and s.spec.num_classes == 0
    train_levels = np.array(levels[:5]) / 127.5 - 1
    # the 140 crop holds only the flat centre (JPEG leaves a small error); the border never shows
    np.testing.assert_allclose(s.train[:, 0].mean(axis=(1, 2)), train_levels, atol=0.03)
    np.testing.assert_allclose(s.train[:, 1].mean(axis=(1, 2)), (255 - np.array(levels[:5])) / 127.5 - 1, atol=0.03)
    assert np.abs(s.train[:, 0] - train_levels[:, None, None]).max() < 0.1
    np.testing.assert_allclose(s.test[:, 0].mean(axis=(1, 2)), np.array(levels[6:]) / 127.5 - 1, atol=0.03)


def test_celeba_grayscale_full_width_valid_and_limit(registry, tmp_path):
    levels = np.array(write_celeba(tmp_path / "CelebA", subdir_eval=True)[:6])
    s = load(registry, "celeba", root=str(tmp_path), size=8, crop=None, grayscale=True, include_valid=True)
    assert s.train.shape == (6, 1, 8, 8) and s.spec.shape == (1, 8, 8)
    centre = (0.299 * levels + 0.587 * (255 - levels) + 0.114 * levels) / 127.5 - 1  # Pillow's L
    np.testing.assert_allclose(s.train[:, 0, 4, 4], centre, atol=0.04)
    # crop None = the 178-wide square: the border colour now shows in the corners
    border = (250 - levels) / 127.5 - 1
    contrast = np.abs(border - centre) > 0.3
    assert contrast.any() and np.all(np.abs(s.train[contrast, 0, 0, 0] - centre[contrast]) > 0.2)
    assert len(load(registry, "celeba", root=str(tmp_path), size=8, limit=3).train) == 3


def test_celeba_cache_is_used_and_invalidated(registry, tmp_path, monkeypatch):
    write_celeba(tmp_path / "celeba")
    first = load(registry, "celeba", root=str(tmp_path), size=8)
    assert list((tmp_path / "celeba" / ".benchbase-cache").glob("celeba-*.npz"))

    def no_decoding(*a, **k):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(celeba_mod, "decode_images", no_decoding)
    again = load(registry, "celeba", root=str(tmp_path), size=8)
    np.testing.assert_array_equal(first.train, again.train)
    with pytest.raises(PluginFault, match="decoded again") as failed:  # another size: another cache entry
        load(registry, "celeba", root=str(tmp_path), size=4)
    assert isinstance(failed.value.__cause__, AssertionError)  # the test's own tripwire, blamed on the loader


def test_celeba_partition_naming_a_missing_image(registry, tmp_path):
    write_celeba(tmp_path / "celeba")
    (tmp_path / "celeba" / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(BenchbaseInputError, match="missing from .*000002.jpg"):
        load(registry, "celeba", root=str(tmp_path), size=8)


def test_missing_celeba_names_folder_and_partition_file(registry, tmp_path):
    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)
    with pytest.raises(MissingDataError) as err:
        load(registry, "celeba", root=str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / "celeba") in msg and "img_align_celeba/" in msg
    assert "lacks list_eval_partition.txt" in msg and "download: true" in msg


def test_celeba_download_is_wired(registry, tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_celeba(src)
    served = {"img_align_celeba.zip": zip_bytes({f"img_align_celeba/{p.name}": p
                                                 for p in (src / "img_align_celeba").iterdir()}),
              "list_eval_partition.txt": (src / "list_eval_partition.txt").read_bytes()}
    monkeypatch.setattr(celeba_mod, "RESOURCES", tuple(
        files.Resource(r.filename, r.url, md5(served[r.filename]), r.extract) for r in celeba_mod.RESOURCES))
    by_url = {r.url: r.filename for r in celeba_mod.RESOURCES}
    monkeypatch.setattr(files, "fetch", lambda url, dest: dest.write_bytes(served[by_url[url]]))
    s = load(registry, "celeba", root=str(tmp_path / "data"), size=8, download=True)
    assert len(s.train) == 5 and all("drive" in u for u in by_url)


# ------------------------------------------------------------------------ image folder


def test_image_folder_with_class_subfolders(registry, tmp_path):
    written = write_image_folder(tmp_path / "imgs", size=8)
    s = load(registry, "image_folder", root=str(tmp_path / "imgs"), size=8, test_fraction=0.25)
    assert len(s.train) + len(s.test) == 12 and len(s.test) == 3
    assert s.spec.num_classes == 3 and s.train_labels.dtype == np.int64
    assert s.spec.shape == (3, 8, 8)
    # exact pixels (PNG, no resize): every train image is one of the written ones, with its class
    lookup = {arr.tobytes(): rel.split("/")[0] for rel, arr in written.items()}
    for x, y in zip(s.train, s.train_labels):
        u8 = np.rint((x + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0)
        assert ["cat", "dog", "emu"][y] == lookup[u8.tobytes()]


def test_image_folder_train_test_dirs_grayscale_resize(registry, tmp_path):
    write_image_folder(tmp_path / "imgs", size=12, split_dirs=True, per_class=4)
    s = load(registry, "image_folder", root=str(tmp_path / "imgs"), size=6, grayscale=True)
    assert s.train.shape == (12, 1, 6, 6) and s.test.shape == (6, 1, 6, 6)
    assert sorted(set(s.test_labels)) == [0, 1, 2]


def test_image_folder_flat_is_unlabelled_and_split_is_fixed(registry, tmp_path):
    from PIL import Image

    (tmp_path / "flat").mkdir()
    for i in range(10):
        Image.new("L", (10, 7), color=i * 20).save(tmp_path / "flat" / f"{i}.png")
    a = load(registry, "image_folder", root=str(tmp_path / "flat"), size=4, grayscale=True, cache=False)
    b = load(registry, "image_folder", root=str(tmp_path / "flat"), size=4, grayscale=True, cache=False)
    assert a.train_labels is None and a.spec.num_classes == 0 and len(a.test) == 1
    np.testing.assert_array_equal(a.train, b.train)
    assert sorted(np.round((a.train[:, 0, 0, 0] + 1) * 127.5 / 20).astype(int).tolist() +
                  np.round((a.test[:, 0, 0, 0] + 1) * 127.5 / 20).astype(int).tolist()) == list(range(10))
    assert not (tmp_path / "flat" / ".benchbase-cache").exists()


def test_image_folder_without_root_or_images(registry, tmp_path):
    with pytest.raises(MissingDataError, match="config.root is not set"):
        load(registry, "image_folder")
    with pytest.raises(MissingDataError, match="is not a folder"):
        load(registry, "image_folder", root=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchbaseInputError, match="holds 0 images"):
        load(registry, "image_folder", root=str(tmp_path / "empty"))
