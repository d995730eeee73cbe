"""Safe downloads against a real HTTP server on 127.0.0.1."""

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from bench.data.download import download_and_extract
from bench.errors import BenchError


def hotdog_zip(extra: dict | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for part in ("train", "test"):
            for label in ("hotdog", "not-hotdog"):
                archive.writestr(f"hotdog/{part}/{label}/0.png", b"not really a png")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


class Server:
    """Serves ``routes`` (path -> bytes); ``/half`` promises more bytes than it sends."""

    def __init__(self, routes: dict):
        self.routes = routes
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the standard library's name)
                server.requests.append(self.path)
                body = server.routes.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                if self.path.startswith("/half"):
                    self.send_header("Content-Length", str(len(body) * 2))
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


GOOD = hotdog_zip()
EVIL = hotdog_zip({"../escaped.txt": b"out"})


@pytest.fixture
def server():
    served = Server({"/hotdog.zip": GOOD, "/half/hotdog.zip": GOOD, "/evil.zip": EVIL})
    yield served
    served.close()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _fetch(server, tmp_path, path, checksum):
    return download_and_extract(urls=[server.url + path], sha1=checksum,
                                archive_name="hotdog.zip", data_dir=tmp_path, folder="hotdog",
                                stream=io.StringIO())


def _nothing_half_written(folder):
    return sorted(p.name for p in folder.iterdir()) == []


def test_download_verifies_extracts_and_a_second_call_downloads_nothing(server, tmp_path):
    root = _fetch(server, tmp_path, "/hotdog.zip", sha1(GOOD))
    assert root == tmp_path / "hotdog"
    assert (root / "train" / "hotdog" / "0.png").read_bytes() == b"not really a png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hotdog"]
    assert server.requests == ["/hotdog.zip"]
    assert _fetch(server, tmp_path, "/hotdog.zip", sha1(GOOD)) == root
    assert server.requests == ["/hotdog.zip"]


def test_a_checksum_mismatch_is_a_clear_error_and_leaves_nothing(server, tmp_path):
    with pytest.raises(BenchError) as caught:
        _fetch(server, tmp_path, "/hotdog.zip", "0" * 40)
    message = str(caught.value)
    assert f"has SHA-1 {sha1(GOOD)}, expected {'0' * 40}" in message
    assert server.url + "/hotdog.zip" in message and str(tmp_path / "hotdog.zip") in message
    assert _nothing_half_written(tmp_path)


def test_a_connection_closed_half_way_is_a_clear_error_and_leaves_nothing(server, tmp_path):
    with pytest.raises(BenchError) as caught:
        _fetch(server, tmp_path, "/half/hotdog.zip", sha1(GOOD))
    assert "could not download hotdog.zip" in str(caught.value)
    assert "closed after" in str(caught.value) or "IncompleteRead" in str(caught.value)
    assert _nothing_half_written(tmp_path)


def test_a_refused_connection_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError) as caught:
        download_and_extract(urls=["http://127.0.0.1:9/hotdog.zip"], sha1=sha1(GOOD),
                             archive_name="hotdog.zip", data_dir=tmp_path, folder="hotdog",
                             stream=io.StringIO())
    assert "http://127.0.0.1:9/hotdog.zip" in str(caught.value)
    assert "refused" in str(caught.value).lower()
    assert _nothing_half_written(tmp_path)


def test_an_archive_member_escaping_the_folder_is_refused(server, tmp_path):
    with pytest.raises(BenchError, match=r"'\.\./escaped\.txt' would land outside"):
        download_and_extract(urls=[server.url + "/evil.zip"], sha1=sha1(EVIL),
                             archive_name="hotdog.zip", data_dir=tmp_path / "data",
                             folder="hotdog", stream=io.StringIO())
    assert not (tmp_path / "escaped.txt").exists()
    assert _nothing_half_written(tmp_path / "data")


def test_the_mirror_is_tried_when_the_first_address_fails(server, tmp_path):
    root = download_and_extract(urls=["http://127.0.0.1:9/hotdog.zip", server.url +
                                      "/hotdog.zip"], sha1=sha1(GOOD), archive_name="hotdog.zip",
                                data_dir=tmp_path, folder="hotdog", stream=io.StringIO())
    assert root.is_dir()


def test_an_archive_placed_by_hand_is_used_without_downloading(server, tmp_path):
    (tmp_path / "hotdog.zip").write_bytes(GOOD)
    root = _fetch(server, tmp_path, "/hotdog.zip", sha1(GOOD))
    assert root.is_dir() and server.requests == []


def test_an_unsafe_archive_placed_by_hand_is_named_too(server, tmp_path):
    placed = tmp_path / "hotdog.zip"
    placed.write_bytes(EVIL)
    with pytest.raises(BenchError) as caught:
        _fetch(server, tmp_path, "/hotdog.zip", sha1(EVIL))
    assert str(caught.value).startswith(
        f"{placed} (found there, so not downloaded): archive member '../escaped.txt' would "
        "land outside the data folder")
    assert str(caught.value).endswith("or remove it so that the next run downloads it, or "
                                      f"unzip it yourself into {tmp_path} (making "
                                      f"{tmp_path / 'hotdog'})")


def test_a_bad_archive_placed_by_hand_is_named_as_the_one_to_replace(server, tmp_path):
    # Found by a new user: the message told them to put hotdog.zip where their bad copy was.
    placed = tmp_path / "hotdog.zip"
    placed.write_bytes(GOOD[:100])
    with pytest.raises(BenchError) as caught:
        _fetch(server, tmp_path, "/hotdog.zip", sha1(GOOD))
    assert str(caught.value) == (
        f"{placed} (found there, so not downloaded) has SHA-1 {sha1(GOOD[:100])}, expected "
        f"{sha1(GOOD)} (a truncated or different file); replace it with hotdog.zip from "
        f"{server.url}/hotdog.zip, or remove it so that the next run downloads it, or unzip "
        f"it yourself into {tmp_path} (making {tmp_path / 'hotdog'})")
    assert server.requests == [] and placed.read_bytes() == GOOD[:100]
    # The last way out, followed (it once said "pass --data", which --dataset hotdog
    # refuses): the unzipped folder is used as a download's would be.
    with zipfile.ZipFile(io.BytesIO(GOOD)) as archive:
        archive.extractall(tmp_path)
    assert _fetch(server, tmp_path, "/hotdog.zip", sha1(GOOD)) == tmp_path / "hotdog"
    assert server.requests == []


def hotdog_archive(train_per_class: int, test_per_class: int, *, macos: bool = False) -> bytes:
    """A real-image archive in the hotdog layout with the given counts, every image
    distinct (files with identical bytes count once); ``macos`` adds the ._ copies and
    __MACOSX/ folder a zip made on a Mac carries."""
    from PIL import Image

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for p, (part, count) in enumerate((("train", train_per_class), ("test", test_per_class))):
            for c, label in enumerate(("hotdog", "not-hotdog")):
                for i in range(count):
                    png = io.BytesIO()
                    Image.new("RGB", (12, 12), (i % 256, i // 256, 2 * p + c)).save(png, "PNG")
                    archive.writestr(f"hotdog/{part}/{label}/{i}.png", png.getvalue())
                    if macos and i < 3:
                        extra = b"\x00\x05\x16\x07AppleDouble resource fork"
                        archive.writestr(f"hotdog/{part}/{label}/._{i}.png", extra)
                        archive.writestr(f"hotdog/__MACOSX/{part}/{label}/._{i}.png", extra)
    return buffer.getvalue()


def test_the_hotdog_dataset_downloads_checks_its_counts_and_splits(tmp_path):
    from bench.data.datasets import DataRequest, load_hotdog

    # A Mac's ._ copies are not images to the loader, nor to the count (it refused them).
    full = hotdog_archive(1000, 400, macos=True)
    served = Server({"/hotdog.zip": full})
    try:
        request = DataRequest(image_size=16, seed=1, data_dir=tmp_path / "data",
                              cache_dir=tmp_path / "cache")
        data = load_hotdog(request, urls=[served.url + "/hotdog.zip"], sha1=sha1(full))
    finally:
        served.close()
    assert data.class_names == ("hotdog", "not-hotdog")
    assert len(data.train) + len(data.validation) == 2000 and len(data.test) == 800
    assert len(data.validation) == 400 and data.source is None
    assert data.train.images.shape[1:] == (16, 16, 3)


@pytest.mark.parametrize("train, test, told", [
    (3, 2, "train holds 6 images, expected 2000"),
    # No test/ folder at all: the count's message, not the folder reader's "pass --data".
    (1000, 0, "test holds 0 images, expected 800; remove"),
])
def test_a_hotdog_folder_with_the_wrong_counts_is_refused(tmp_path, train, test, told):
    from bench.data.datasets import DataRequest, load_hotdog

    short = hotdog_archive(train, test)
    served = Server({"/hotdog.zip": short})
    try:
        with pytest.raises(BenchError, match=told):
            load_hotdog(DataRequest(image_size=16, data_dir=tmp_path, cache_dir=tmp_path),
                        urls=[served.url + "/hotdog.zip"], sha1=sha1(short))
    finally:
        served.close()
