"""Build and use a *wheelhouse*: one folder with everything an offline install needs.

A workshop room with 30 laptops and bad Wi-Fi cannot download 4 GB thirty
times. The instructor builds the folder once, copies it onto USB sticks or a
shared drive, and every participant installs from it with no network at all.

The folder holds:

- ``wheels/``             a wheel for every pinned package (``requirements.lock``),
                          pip/setuptools/wheel themselves and this course's ``xfer_helpers``
- ``data/fashion_mnist/`` the four original Fashion-MNIST files
- ``data/<model>/``       optional: the articles' models named with ``--models`` (``make wheelhouse
                          MODELS=resnet18,vgg16``), as their publishers serve them, hash-checked
- ``course.tar.gz``       the course itself (notebooks, Makefile, ...) from ``git archive HEAD``
- ``manifest.json``       size and sha256 of every file, and the Python/OS it was built for
- ``README.txt``          the commands a participant types

Commands (``python3 scripts/wheelhouse.py --help``):

    build DIR         make the folder (needs the network once, and Fashion-MNIST installed)
    check DIR         is the folder complete and uncorrupted, and does it fit this computer?
    install-data DIR  copy Fashion-MNIST from the folder to where the course looks for it
    install-models DIR  copy the models the folder holds (if any) to where the course looks for them

Example:
    $ python3 scripts/wheelhouse.py build wheelhouse        # instructor, online
    $ make setup WHEELHOUSE=wheelhouse                      # participant, offline

``check`` uses the standard library only, so it runs before the course's
environment exists; ``build`` and ``install-data`` import ``xfer_helpers``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "manifest.json"
# pip, setuptools and wheel are not in requirements.lock (pip freeze leaves them out), but an
# offline `make setup` needs them: pip upgrades itself, and `pip install -e .` builds the
# course package with setuptools. These are the versions in the course's tested environment.
BUILD_TOOLS = ("pip==26.3", "setuptools==84.2.1", "wheel==0.48.0")
# What goes into the course package's wheel (a copy, so nothing is written into the checkout).
PACKAGE_FILES = ("pyproject.toml", "README.md", "xfer_helpers")


class WheelhouseError(RuntimeError):
    """The wheelhouse is missing, incomplete, corrupt or made for another computer."""


def _say(message: str) -> None:
    print(message, flush=True)


def _gigabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.2f} GB"


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes.

    Example:
        >>> sha256_file(Path(__file__))[:8]  # doctest: +SKIP
        '3f1c9a2e'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def this_computer() -> dict:
    """The facts a wheel depends on: Python version, implementation, OS and processor.

    Example:
        >>> this_computer()["python"]  # doctest: +SKIP
        '3.11'
    """
    return {"python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "implementation": platform.python_implementation(),
            "platform": sysconfig.get_platform()}        # e.g. linux-x86_64, macosx-11.0-arm64


def _copy_package_source(workdir: Path) -> Path:
    """Copy what the course package's wheel needs into ``workdir`` (keeps build/ out of the repo)."""
    source = workdir / "xfer-course-package"
    source.mkdir()
    for name in PACKAGE_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, source / name)
    return source


def download_wheels(wheels: Path, lock: Path, pip_args: tuple[str, ...] = ()) -> None:
    """Put a wheel for the course package, every dependency and the build tools into ``wheels``.

    pip resolves the course package's dependencies under ``-c lock``, so every
    version is the pinned one and only what this platform needs is fetched.
    Packages published only as source are built into wheels here, so the
    offline install never has to build anything but the course package.

    Example:
        >>> download_wheels(Path("wheelhouse/wheels"), Path("requirements.lock"))  # doctest: +SKIP
    """
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xfer-wheelhouse-") as tmp:
        package = _copy_package_source(Path(tmp))
        cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--progress-bar", "off",
               "--wheel-dir", str(wheels), "-c", str(lock), str(package), *BUILD_TOOLS, *pip_args]
        result = subprocess.run(cmd)
    if result.returncode != 0:
        raise WheelhouseError(
            "pip could not fetch every wheel (see its message above). Check the network "
            "connection and try again; files already in the folder are reused.")


def _pinned_names(lock: Path) -> set[str]:
    names = set()
    for line in lock.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            names.add(_normalise(line.split("==")[0]))
    return names


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _wheel_name(filename: str) -> str:
    return _normalise(filename.split("-")[0])


def copy_fashion_mnist(dest: Path) -> list[Path]:
    """Copy the four Fashion-MNIST files (sha256-checked) from this machine into ``dest``.

    Example:
        >>> copy_fashion_mnist(Path("wheelhouse/data/fashion_mnist"))  # doctest: +SKIP
    """
    from xfer_helpers import assets

    asset = assets.get_asset("fashion_mnist")
    source = asset.locate()
    if source is None:
        raise WheelhouseError(
            "Fashion-MNIST is not installed on this machine, so it cannot go into the "
            f"wheelhouse.\nFix: {asset.fix}")
    return _copy_checked(assets.FASHION_MNIST_FILES, source, dest, "reinstall Fashion-MNIST")


def _copy_checked(remotes, source: Path, dest: Path, fix: str) -> list[Path]:
    """Copy each remote's file from ``source`` into ``dest`` after checking its hash on this machine."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for remote in remotes:
        if not remote.matches(source / remote.filename):
            raise WheelhouseError(f"{source / remote.filename} does not match its recorded "
                                  f"{remote.hash_kind}; {fix} and build again.")
        shutil.copyfile(source / remote.filename, dest / remote.filename)
        copied.append(dest / remote.filename)
    return copied


def copy_models(data: Path, names: list[str]) -> list[Path]:
    """Put the named online-only models (``xfer doctor`` lists them as options) into ``data/<name>/``.

    A model already downloaded on this machine is copied; otherwise it is downloaded first
    (``XFER_ONLINE=1``, as ``make wheelhouse MODELS=...`` sets). Every file is hash-checked.

    Example:
        >>> copy_models(Path("wheelhouse/data"), ["resnet18"])  # doctest: +SKIP
        [PosixPath('wheelhouse/data/resnet18/resnet18-f37072fd.pth')]
    """
    from xfer_helpers import assets

    options = sorted(name for name, asset in assets.ASSETS.items() if asset.optional)
    copied = []
    for name in names:
        asset = assets.ASSETS.get(name.strip().lower().replace("-", "_"))
        if asset is None or not asset.optional:
            raise WheelhouseError(f"{name!r} is not one of the models a wheelhouse can carry: "
                                  f"{', '.join(options)} (MODELS=resnet18,vgg16 for several).")
        try:
            source = asset.locate() or assets.download_asset(asset.name)
        except (assets.OfflineError, assets.ChecksumError, OSError) as exc:
            raise WheelhouseError(f"{asset.name} could not be downloaded: {exc}") from exc
        copied += _copy_checked(asset.online, source, data / asset.name, f"delete {source}")
    return copied


def install_models(folder: Path) -> list[str]:
    """Copy the models a wheelhouse holds into the course's data folder; return their names.

    Each file is copied under a temporary name, hash-checked, then renamed, so a corrupt copy
    leaves nothing behind. A wheelhouse without models installs none.

    Example:
        >>> install_models(Path("wheelhouse"))  # doctest: +SKIP
        ['resnet18']
    """
    from xfer_helpers import assets

    installed = []
    for asset in (a for a in assets.ASSETS.values() if a.optional):
        source = Path(folder) / "data" / asset.name
        if not source.is_dir():
            continue
        _install_checked(asset.online, source, assets.data_dir() / asset.name)
        installed.append(asset.name)
    return installed


def _install_checked(remotes, source: Path, target: Path) -> None:
    """Copy each remote's file from the wheelhouse folder ``source`` into ``target``, hash-checked.

    A file already there and whole is kept. Each copy goes under a temporary name, is checked,
    then renamed, so a corrupt copy leaves nothing behind.
    """
    target.mkdir(parents=True, exist_ok=True)
    for remote in remotes:
        dest = target / remote.filename
        if remote.matches(dest):
            continue
        if not (source / remote.filename).is_file():
            raise WheelhouseError(f"{source / remote.filename} is missing; copy the wheelhouse again.")
        tmp = dest.with_name(f".{remote.filename}.part")
        shutil.copyfile(source / remote.filename, tmp)
        if not remote.matches(tmp):
            tmp.unlink()
            raise WheelhouseError(f"{source / remote.filename} is corrupt; copy the wheelhouse again.")
        os.replace(tmp, dest)


def archive_course(target: Path) -> bool:
    """Write the committed course (``git archive HEAD``) to ``target``; False outside git.

    Example:
        >>> archive_course(Path("wheelhouse/course.tar.gz"))  # doctest: +SKIP
        True
    """
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return False
    result = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar.gz",
                             "--prefix=xfer-course/", "-o", str(target), "HEAD"])
    changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True).stdout.strip()
    if changed:
        _say("    note: files changed since the last commit are NOT in course.tar.gz "
             "(commit them and build again if participants need them).")
    return result.returncode == 0


def write_manifest(folder: Path) -> dict:
    """Record size and sha256 of every file in ``folder`` and the platform it is for.

    Example:
        >>> write_manifest(Path("wheelhouse"))["platform"]  # doctest: +SKIP
        'linux-x86_64'
    """
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel in (MANIFEST, "README.txt"):
            continue
        files[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {**this_computer(), "built_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "total_bytes": sum(f["bytes"] for f in files.values()), "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


README_TEXT = """\
Offline installer for the transfer-learning course
===================================================

Built {built_at} for Python {python} on {platform}. Size: {size}.
It works only on a computer with that Python version, operating system and processor.

1. Copy this whole folder to your laptop (faster than installing from the stick).
2. Unpack the course and install, with no network needed:

     tar xzf {name}/course.tar.gz
     cd xfer-course
     make setup WHEELHOUSE=../{name}
     make doctor

`make setup` first checks every file in this folder against manifest.json. If it
reports a corrupt or missing file, copy the folder again.
"""


def build(folder: Path, lock: Path = ROOT / "requirements.lock",
          pip_args: tuple[str, ...] = (), models: tuple[str, ...] = ()) -> dict:
    """Build the wheelhouse in ``folder``; return its manifest.

    Example:
        >>> build(Path("wheelhouse"))["total_bytes"] > 1e9  # doctest: +SKIP
        True
    """
    folder = folder.resolve()
    started = time.monotonic()
    _say(f"1/4 Wheels for every pinned package into {folder / 'wheels'} "
         "(about 4 GB; a minute or two on a fast connection) ...")
    download_wheels(folder / "wheels", lock, pip_args)
    have = {_wheel_name(p.name) for p in (folder / "wheels").glob("*.whl")}
    unpinned = sorted(have - _pinned_names(lock) - {_normalise(t.split("==")[0]) for t in BUILD_TOOLS}
                      - {"xfer-helpers"})
    _say(f"    {len(have)} wheels." + (f" Not pinned in {lock.name} (add them): {', '.join(unpinned)}"
                                        if unpinned else ""))
    _say("2/4 Fashion-MNIST" + (f" and the models {', '.join(models)}" if models else "") + " ...")
    copy_fashion_mnist(folder / "data" / "fashion_mnist")
    copy_models(folder / "data", list(models))
    _say("3/4 The course (git archive of the last commit) ...")
    if not archive_course(folder / "course.tar.gz"):
        _say("    skipped: this is not a git checkout. Participants need a copy of the course.")
    _say("4/4 manifest.json (sha256 of every file) ...")
    manifest = write_manifest(folder)
    (folder / "README.txt").write_text(README_TEXT.format(
        built_at=manifest["built_at"], python=manifest["python"], platform=manifest["platform"],
        size=_gigabytes(manifest["total_bytes"]), name=folder.name))
    _say(f"Done in {time.monotonic() - started:.0f} s: {folder} holds {len(manifest['files'])} "
         f"files, {_gigabytes(manifest['total_bytes'])}.\n"
         f"A participant installs with:  make setup WHEELHOUSE={folder}")
    return manifest


def check(folder: Path, verify_hashes: bool = True) -> dict:
    """Raise ``WheelhouseError`` unless ``folder`` is complete, uncorrupted and fits this computer.

    Example:
        >>> check(Path("wheelhouse"))["python"]  # doctest: +SKIP
        '3.11'
    """
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise WheelhouseError(
            f"{folder} is not a wheelhouse (no {MANIFEST} in it). Give the folder that "
            "`make wheelhouse` made, e.g.  make setup WHEELHOUSE=/media/usb/wheelhouse")
    manifest = json.loads((folder / MANIFEST).read_text())
    here = this_computer()
    wrong = [f"{key} {manifest[key]} (this computer: {here[key]})"
             for key in ("implementation", "python", "platform") if manifest[key] != here[key]]
    if wrong:
        raise WheelhouseError(
            f"This wheelhouse was built for another kind of computer: {'; '.join(wrong)}.\n"
            "Use a Python of the version it was built for (e.g.  make setup PYTHON=python3.11 ...), "
            "or ask the instructor for a wheelhouse built on a computer like yours.")
    bad = []
    for rel, info in manifest["files"].items():
        path = folder / rel
        if not path.is_file():
            bad.append(f"missing: {rel}")
        elif path.stat().st_size != info["bytes"]:
            bad.append(f"incomplete: {rel}")
        elif verify_hashes and sha256_file(path) != info["sha256"]:
            bad.append(f"corrupt: {rel}")
    if bad:
        shown = "\n  ".join(bad[:10]) + (f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise WheelhouseError(f"The wheelhouse {folder} is damaged:\n  {shown}\n"
                              "Copy the folder again from the USB stick or shared drive.")
    return manifest


def install_data(folder: Path) -> Path:
    """Copy Fashion-MNIST from the wheelhouse into the course's data folder; return that folder.

    The data folder is ``$XFER_DATA_DIR/fashion_mnist`` (default
    ``~/.cache/xfer_course/fashion_mnist``), where ``xfer_helpers.assets`` looks
    when the Debian package is not installed. Every file is sha256-checked.

    Example:
        >>> install_data(Path("wheelhouse"))  # doctest: +SKIP
        PosixPath('/home/me/.cache/xfer_course/fashion_mnist')
    """
    from xfer_helpers import assets

    target = assets.data_dir() / "fashion_mnist"
    _install_checked(assets.FASHION_MNIST_FILES, Path(folder) / "data" / "fashion_mnist", target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line: ``build``, ``check`` or ``install-data``; returns the exit code."""
    parser = argparse.ArgumentParser(
        description="Build or use an offline installer folder (wheels + data + course).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="make the folder (online, on a computer like the participants')")
    p.add_argument("folder", type=Path)
    p.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    p.add_argument("--models", default="", help="comma-separated online-only models to add, "
                   "e.g. resnet18,vgg16 (xfer doctor lists them as options)")
    p = sub.add_parser("check", help="check the folder against its manifest and this computer")
    p.add_argument("folder", type=Path)
    p.add_argument("--sizes-only", action="store_true", help="skip the sha256 check (faster)")
    p = sub.add_parser("install-data", help="copy Fashion-MNIST to where the course finds it")
    p.add_argument("folder", type=Path)
    p = sub.add_parser("install-models", help="copy the folder's models (if any) to where the course finds them")
    p.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.folder, args.lock, models=tuple(m for m in args.models.split(",") if m.strip()))
        elif args.command == "check":
            started = time.monotonic()
            manifest = check(args.folder, verify_hashes=not args.sizes_only)
            _say(f"Wheelhouse OK: {len(manifest['files'])} files, "
                 f"{_gigabytes(manifest['total_bytes'])}, for Python {manifest['python']} on "
                 f"{manifest['platform']} (checked in {time.monotonic() - started:.0f} s).")
        elif args.command == "install-models":
            names = install_models(args.folder)
            _say(f"Models installed: {', '.join(names)}" if names else "No models in this wheelhouse.")
        else:
            _say(f"Fashion-MNIST: installed in {install_data(args.folder)}")
    except WheelhouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
