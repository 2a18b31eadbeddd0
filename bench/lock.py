"""One process at a time per run id: a lock file beside the run's checkpoint.

`<checkpoint_dir>/<run id>/run.lock` is held with flock(2) while the run trains, and
holds the owner's pid, host and process start time (JSON).  Of two processes started at
once exactly one gets it; the other stops with "run <id> is already running (pid, host)"
(exit 2) instead of training the same run twice.  The kernel releases a flock when its
process dies, so a killed run leaves no lock that blocks its relaunch (its stale file is
taken over, logged); a forked child (a data-loader worker, which would outlive a killed run
for seconds) closes its inherited copy at once, so the lock dies with the run's process.  Readers that only look (`holder`) decide staleness from the file:
on the same host exactly (the pid is dead, or now belongs to a later process); a lock
from another host cannot be checked from here, so it counts as held.  `bench.sweep` reads the same
file to report RUNNING and never to relaunch a run that is running.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from bench.errors import RunBusyError, StorageError

log = logging.getLogger(__name__)
LOCK_NAME = "run.lock"
#: the locks this process holds: a forked child (a data-loader worker) drops its copies at once,
#: so a lock dies with the run's own process, not with the last of its orphaned workers
_HELD: set["RunLock"] = set()


def _drop_inherited_locks() -> None:
    for lock in list(_HELD):
        os.close(lock.fd)
        lock.fd = None  # this copy of the object is the child's: it never releases the parent's file
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


def lock_path(checkpoint_dir: str | Path, run_id: str) -> Path:
    return Path(checkpoint_dir) / run_id / LOCK_NAME


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell pid reuse apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int) -> bool:
    """Whether process `pid` (on this host) exists and is not a zombie (ended, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_owner(path: Path) -> dict | None:
    """The lock's owner {pid, host, started, ...}; None when there is no lock file."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # half-written by a process killed while taking it: stale unless on another host


def holder(path: Path) -> dict | None:
    """The live owner of the lock at `path`, or None when it is free or stale."""
    owner = read_owner(path)
    if owner is None:
        return None
    if owner.get("host", socket.gethostname()) != socket.gethostname():
        return owner  # cannot check a process on another machine: assume it runs
    pid = owner.get("pid")
    if not isinstance(pid, int) or not process_alive(pid):
        return None
    started = owner.get("proc_start")
    if started is not None and _start_time(pid) not in (None, started):
        return None  # the pid was reused by a later process
    return owner


class RunLock:
    """`with RunLock(checkpoint_dir, run_id): ...` runs the body as the run's only process."""

    def __init__(self, checkpoint_dir: str | Path, run_id: str):
        self.run_id, self.path = run_id, lock_path(checkpoint_dir, run_id)
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock or raise RunBusyError.  The kernel's flock decides who owns it, so
        a process killed with SIGKILL never leaves a lock that blocks the next launch; the
        file's content (pid, host) is for the message and for `bench.sweep status`."""
        try:
            while True:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
                except FileNotFoundError:  # the owner before us removed the emptied run folder
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    owner = read_owner(self.path) or {}
                    raise RunBusyError(
                        f"run {self.run_id} is already running (pid {owner.get('pid')}, host "
                        f"{owner.get('host')}, since {owner.get('started')}); this launch stops so that "
                        "it is not computed twice. Wait for it to finish: a relaunch then prints its "
                        f"record. If that process is gone (its host crashed), delete {self.path}.") from None
                try:  # the owner before us may have deleted the file we locked: lock the live one
                    if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)
            previous = read_owner(self.path)
            if previous:
                log.warning("Taking over the lock %s of a process that is gone (%s).", self.path, previous)
            me = {"pid": os.getpid(), "host": socket.gethostname(), "proc_start": _start_time(os.getpid()),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(me).encode())
        except OSError as error:
            raise StorageError(f"Cannot create the run lock {self.path} ({error.strerror}). Point "
                               "runtime.checkpoint_dir at a writable folder.") from None
        self.fd = fd
        _HELD.add(self)

    def release(self) -> None:
        _HELD.discard(self)
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # while still holding it: the next owner makes a new file
            try:  # a finished run leaves no empty folder behind (a checkpoint or grouping files keep it)
                self.path.parent.rmdir()
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None
