"""A sealed room for one student's kernel: bubblewrap, resource limits, nothing left behind.

Grading runs a student's notebook, and a notebook can run any code. So each
submission's kernel runs inside a sandbox built with Debian's ``bubblewrap``
(``bwrap``), started through :class:`SandboxedKernelManager`:

- **its own view of the disk**: the system (``/usr``, ``/etc``), Python, the course's
  virtual environment and this package, all read-only, plus one empty scratch folder
  that is its working directory and home. The course's ``solutions/``, the grader's
  nbgrader course (gradebook, source, other submissions, output) are not in it;
- **no network**: a network namespace of its own (the kernel talks to the grader
  through Unix sockets in a private folder, not TCP);
- **its own processes**: a PID namespace, killed as a whole when the kernel stops
  (a double-forked daemon dies with it);
- **limits** (``resource.setrlimit``): address space (``XFER_SANDBOX_MEMORY_GB``, default
  10), processes and threads (512), open files (1024), file size (256 MB);
- when the grader runs as root, the kernel runs as an unprivileged user of its own
  (a uid from 61000 on), so the process limit applies and nothing of root's is writable.

Example:
    >>> cmd = sandbox_command(["python", "-c", "print(1)"], "/tmp/scratch", "/tmp/ipc")  # doctest: +SKIP
    >>> cmd[0]                                                                          # doctest: +SKIP
    'bwrap'
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
FIRST_UID = 61000
SANDBOX_UIDS = 4000  # sandbox users are FIRST_UID ... FIRST_UID + 3999
MEMORY_GB_ENV = "XFER_SANDBOX_MEMORY_GB"
MAX_PROCESSES = 512
MAX_OPEN_FILES = 1024
MAX_FILE_BYTES = 256 << 20
SCRATCH_TMPFS_BYTES = 1 << 30
WARM_LAUNCHER = "xfer_helpers.warm_kernel"  # runs instead of ipykernel_launcher
# Environment variables the kernel keeps (everything else is cleared).
KEPT_ENV_PREFIXES = ("XFER_", "NBGRADER_", "OMP_", "MKL_", "OPENBLAS_", "TF_", "KERAS_",
                     "ONEDNN_", "ATEN_", "TORCH_")
KEPT_ENV = ("LANG", "LC_ALL", "TZ", "PYTHONHASHSEED", "MPLBACKEND", "CUDA_VISIBLE_DEVICES")
INSTALL_HINT = ("Grading runs every submission in a sandbox made with bubblewrap, which is "
                "not installed. Install it: `make sandbox` (Debian/Ubuntu: "
                "`apt-get install bubblewrap`).")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces on this machine."""


def bwrap_path() -> str:
    """Path of the ``bwrap`` program; raises :class:`SandboxUnavailable` with what to do.

    Example:
        >>> bwrap_path()  # doctest: +SKIP
        '/usr/bin/bwrap'
    """
    found = shutil.which("bwrap")
    if not found:
        raise SandboxUnavailable(INSTALL_HINT)
    return found


_CHECKED: list[str] = []


def check_sandbox() -> str:
    """Make sure bubblewrap can build a sandbox here (once per process); return its path.

    Raises :class:`SandboxUnavailable` saying what is missing (bwrap itself, or user
    namespaces when the grader does not run as root).

    Example:
        >>> check_sandbox()  # doctest: +SKIP
        '/usr/bin/bwrap'
    """
    import subprocess

    path = bwrap_path()
    if not _CHECKED:
        namespaces = ["--unshare-pid", "--unshare-net"] if os.getuid() == 0 else ["--unshare-all"]
        done = subprocess.run([path, *namespaces, "--ro-bind", "/", "/", "true"],
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise SandboxUnavailable(
                f"bubblewrap cannot create a sandbox on this machine ({done.stderr.strip()}). "
                "Grade as root, or enable unprivileged user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1).")
        _CHECKED.append(path)
    return path


def _read_only_paths() -> list[Path]:
    """What a kernel needs to read: Python, the environment, this package, the data cache."""
    paths = [Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent,
             PACKAGE_DIR]
    data = os.environ.get("XFER_DATA_DIR") or str(Path.home() / ".cache" / "xfer_course")
    paths.append(Path(data))
    keep = []
    for path in paths:
        path = path.resolve()
        if path.exists() and not any(path == p or p in path.parents for p in keep) \
                and not str(path).startswith(("/usr/", "/etc/")) and str(path) != "/usr":
            keep = [p for p in keep if path not in p.parents] + [path]
    return keep


def sandbox_command(command: list[str], scratch: str | os.PathLike, ipc: str | os.PathLike,
                    uid: int | None = None) -> list[str]:
    """The ``bwrap`` command line that runs ``command`` sealed off, in ``scratch``.

    ``ipc`` is the folder of the kernel's Unix sockets and connection file (writable).
    ``uid`` (only when the caller is root): the unprivileged user the command runs as.

    Example:
        >>> cmd = sandbox_command(["true"], "/tmp/s", "/tmp/i")  # doctest: +SKIP
        >>> "--unshare-net" in cmd                                # doctest: +SKIP
        True
    """
    scratch, ipc = str(Path(scratch).resolve()), str(Path(ipc).resolve())
    # As root, no user namespace (the command drops to `uid` itself); otherwise bwrap needs one.
    namespaces = (["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                   "--unshare-cgroup-try"] if uid is not None else ["--unshare-all"])
    args = [bwrap_path(), *namespaces, "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
            "--proc", "/proc", "--dev", "/dev", "--ro-bind-try", "/sys", "/sys",
            "--perms", "1777", "--size", str(SCRATCH_TMPFS_BYTES), "--tmpfs", "/tmp"]
    for name in ("bin", "lib", "lib64", "lib32", "sbin"):
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    binds = [(str(p), False) for p in _read_only_paths()] + [(scratch, True), (ipc, True)]
    made = {"/", "/usr", "/etc", "/proc", "/dev", "/sys", "/tmp"}
    for path, _ in binds:  # parent folders readable by the sandbox user (bwrap makes them 0700)
        for parent in reversed(Path(path).parents):
            if str(parent) not in made:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
    for path, writable in binds:
        args += ["--bind" if writable else "--ro-bind", path, path]
    args += ["--chdir", scratch, "--clearenv"]
    environment = {name: value for name, value in os.environ.items()
                   if name.startswith(KEPT_ENV_PREFIXES) or name in KEPT_ENV}
    environment.update(HOME=scratch, TMPDIR="/tmp", USER="student", LOGNAME="student",
                       PATH=os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
                       MPLCONFIGDIR=str(Path(scratch) / ".matplotlib"))
    for name, value in sorted(environment.items()):
        args += ["--setenv", name, value]
    if uid is not None:
        args += ["--", shutil.which("setpriv") or "setpriv", "--reuid", str(uid), "--regid",
                 str(uid), "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                 "--no-new-privs", *command]
    else:
        args += ["--", *command]
    return args


def memory_limit_bytes() -> int:
    """The address-space limit of a sandboxed kernel (``XFER_SANDBOX_MEMORY_GB``, default 10).

    PyTorch and TensorFlow together reserve about 5 GB of address space after import,
    so the default leaves about 5 GB for the student's work.

    Example:
        >>> memory_limit_bytes() >= 6 * 2**30
        True
    """
    gigabytes = float(os.environ.get(MEMORY_GB_ENV) or 10)
    if gigabytes < 6:
        raise ValueError(f"{MEMORY_GB_ENV}={gigabytes:g} is too small: importing PyTorch and "
                         "TensorFlow alone takes about 5 GB of address space; use 6 or more")
    return int(gigabytes * 2**30)


def apply_limits() -> None:
    """Set this process's resource limits (inherited by everything it starts)."""
    limits = {resource.RLIMIT_AS: memory_limit_bytes(), resource.RLIMIT_NPROC: MAX_PROCESSES,
              resource.RLIMIT_NOFILE: MAX_OPEN_FILES, resource.RLIMIT_FSIZE: MAX_FILE_BYTES,
              resource.RLIMIT_CORE: 0}
    if os.getuid() != 0:  # the limit counts all of this user's processes, the grader's too
        limits[resource.RLIMIT_NPROC] = MAX_PROCESSES + _count_own_processes()
    for kind, value in limits.items():
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))  # hard = soft: the kernel cannot raise it


def _count_own_processes() -> int:
    return _process_owners().count(os.getuid())


def sandbox_uid(folder: str | os.PathLike) -> int | None:
    """The unprivileged uid for the sandbox in ``folder`` (None unless running as root).

    Each sandbox gets its own uid (from :data:`FIRST_UID`), so that parallel graders'
    process limits and files stay apart: never one that a running process has (another
    sandbox's kernel, such as the next student's kernel started ahead), whose clean-up
    would kill this sandbox's processes too.

    Example:
        >>> sandbox_uid("/tmp/x") is None or sandbox_uid("/tmp/x") >= FIRST_UID
        True
    """
    if os.getuid() != 0:
        return None
    busy = set(_process_owners())
    start = (os.getpid() * 7 + abs(hash(str(folder)))) % SANDBOX_UIDS
    candidates = (FIRST_UID + (start + k) % SANDBOX_UIDS for k in range(SANDBOX_UIDS))
    return next(uid for uid in candidates if uid not in busy)


def _process_owners() -> list[int]:
    """The uid of every running process."""
    uids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                uids.append(entry.stat().st_uid)
            except OSError:
                pass
    return uids


def kill_user_processes(uid: int) -> int:
    """SIGKILL every process of ``uid`` (a sandbox user, never root); return how many."""
    import signal

    if uid < FIRST_UID:
        raise ValueError(f"refusing to kill the processes of uid {uid}: not a sandbox user")
    killed = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed += 1
            except OSError:
                pass
    return killed


class SandboxFolders:
    """A private folder with ``scratch/`` (the kernel's working directory) and ``ipc/``."""

    def __init__(self, source_dir: str | os.PathLike | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="xfer-sandbox-"))
        self.scratch, self.ipc = self.root / "scratch", self.root / "ipc"
        self.scratch.mkdir()
        self.ipc.mkdir()
        self.uid = sandbox_uid(self.root)
        os.chmod(self.root, 0o711)
        if self.uid is not None:
            for path in (self.scratch, self.ipc):
                os.chown(path, self.uid, self.uid)
        if source_dir:
            self.add_files(source_dir)

    def add_files(self, source_dir: str | os.PathLike) -> None:
        """Copy the student's own files (data they read; never notebooks) into ``scratch/``."""
        for item in Path(source_dir).iterdir():
            if item.is_file() and not item.is_symlink() and item.suffix != ".ipynb" \
                    and item.stat().st_size < 50 * 2**20:
                shutil.copyfile(item, self.scratch / item.name)
                if self.uid is not None:
                    os.chown(self.scratch / item.name, self.uid, self.uid)

    def remove(self) -> None:
        """Kill what is left of the sandbox user's processes and delete the folders."""
        if self.uid is not None:
            kill_user_processes(self.uid)
        shutil.rmtree(self.root, ignore_errors=True)


def _build_kernel_manager():
    from jupyter_client.manager import AsyncKernelManager

    class SandboxedKernelManager(AsyncKernelManager):
        """A Jupyter kernel manager whose kernels run in a bubblewrap sandbox.

        Used by :class:`xfer_helpers.sealed.SealedExecute` for every graded notebook.
        The kernel's working directory is a fresh scratch folder (the student's own
        non-notebook files are copied in), it talks over Unix sockets, and the folder is
        deleted, with every process left in it, when the kernel is cleaned up.
        """

        folders: SandboxFolders | None = None

        async def _async_pre_start_kernel(self, **kw):
            check_sandbox()
            if self.folders is None:
                self.folders = SandboxFolders(kw.get("cwd"))
                self.transport = "ipc"
                self.ip = str(self.folders.ipc / "kernel")
                self.connection_file = str(self.folders.ipc / "kernel.json")
            kw["cwd"] = str(self.folders.scratch)
            # SIGINT sent to bwrap does not reach the kernel in its own session and PID
            # namespace: interrupt (cell time limits) through the control channel instead.
            self.kernel_spec.interrupt_mode = "message"
            kw.pop("env", None)  # the sandbox builds its own environment
            started = await super()._async_pre_start_kernel(**kw)
            if self.folders.uid is not None:  # written by root, read by the sandbox user
                os.chown(self.connection_file, self.folders.uid, self.folders.uid)
            return started

        def format_kernel_cmd(self, extra_arguments=None):
            command = super().format_kernel_cmd(extra_arguments)
            # The kernel imports what every exercise's setup cell imports before it answers
            # (xfer_helpers.warm_kernel), so that a kernel started ahead is ready to go.
            command = [WARM_LAUNCHER if part == "ipykernel_launcher" else part for part in command]
            return [sys.executable, "-m", "xfer_helpers.sandbox", "--scratch",
                    str(self.folders.scratch), "--ipc", str(self.folders.ipc),
                    *(["--uid", str(self.folders.uid)] if self.folders.uid is not None else []),
                    "--", *command]

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart and self.folders is not None:
                self.folders.remove()
                self.folders = None

    return SandboxedKernelManager


def __getattr__(name):  # PEP 562: jupyter_client is imported only by the grader
    if name == "SandboxedKernelManager":
        cls = _build_kernel_manager()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """``python -m xfer_helpers.sandbox --scratch S --ipc I [--uid U] -- command...``"""
    parser = argparse.ArgumentParser(prog="python -m xfer_helpers.sandbox")
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--ipc", required=True)
    parser.add_argument("--uid", type=int)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    argv_bwrap = sandbox_command(command, args.scratch, args.ipc, args.uid)
    # The kernel's own stdout/stderr (its banner, anything written to file descriptors 1
    # and 2 directly) go to a log beside the sandbox, not to the grader's terminal.
    log = os.open(Path(args.ipc).parent / "kernel.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                  0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    apply_limits()
    os.execv(argv_bwrap[0], argv_bwrap)


if __name__ == "__main__":
    main()
