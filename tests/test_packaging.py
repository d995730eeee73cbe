"""Installed as a package: the wheel carries the shipped spaces, and they are found."""

import os
import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT

from bench.space import DEFAULT_SPACES_DIR, default_spaces_dir


def _shipped_files() -> set[str]:
    return {p.name for p in (ROOT / "search_spaces").glob("*.py")}


def _build_wheel(tmp_path):
    # A copy, so the build's own folders (build/, *.egg-info) never land in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("bench", "search_spaces"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("finetune_bench-*.whl")
    return wheel


def test_the_wheel_carries_the_shipped_spaces_the_entry_points_and_bounded_keras(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        packaged = {n.split("/")[-1] for n in names if n.startswith("bench/search_spaces/")}
        assert packaged == _shipped_files() and "seed.py" in packaged
        assert "bench/__main__.py" in names and "bench/cli.py" in names
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "finetune-bench = bench.cli:command_line" in archive.read(entry_points).decode()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [line for line in archive.read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    assert any(line.startswith("Requires-Dist: scipy") for line in requires), requires
    assert any("keras<3.16" in line.replace(" ", "") for line in requires), requires


def test_the_default_spaces_dir_is_the_local_folder_else_the_shipped_one(tmp_path):
    assert default_spaces_dir(cwd=tmp_path) == DEFAULT_SPACES_DIR
    assert {p.name for p in DEFAULT_SPACES_DIR.glob("*.py")} == _shipped_files()
    (tmp_path / "search_spaces").mkdir()
    assert default_spaces_dir(cwd=tmp_path) == (tmp_path / "search_spaces").resolve()


def test_an_installed_wheel_lists_its_packaged_spaces_from_an_empty_folder(tmp_path):
    """No checkout beside the package: ``python -m bench list`` falls back to the spaces
    inside the package."""
    wheel = _build_wheel(tmp_path)
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
         str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    code = "import bench.space as s; print(s.default_spaces_dir()); print(s.__file__)"
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", code], cwd=empty, env=env,
                           capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    spaces_dir, module = where.stdout.split()
    assert module.startswith(str(site)), module
    assert spaces_dir == str((site / "bench" / "search_spaces").resolve())
    listing = subprocess.run([sys.executable, "-m", "bench", "list"], cwd=empty, env=env,
                             capture_output=True, text=True, timeout=300)
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert "seed (v2)" in listing.stdout and "two-phase (v" in listing.stdout
    assert "cannot be loaded" not in listing.stdout
