"""The app's work folders: owned by their process, removed when stale (`studio.workdir`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from studio import workdir


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_claimed_folder_names_its_process_and_is_kept_while_it_runs(tmp_path):
    folder = workdir.claim(tmp_path)
    pid, started = (folder / workdir.OWNER_FILE).read_text().split()
    assert folder.name.startswith(workdir.PREFIX) and int(pid) == os.getpid() and started.isdigit()
    assert workdir.remove_stale(tmp_path) == [] and folder.is_dir()


def test_folders_of_dead_processes_and_old_unowned_ones_are_removed_at_the_next_claim(tmp_path):
    dead = tmp_path / f"{workdir.PREFIX}dead"
    (dead / "gallery-0").mkdir(parents=True)
    (dead / workdir.OWNER_FILE).write_text(f"{_dead_pid()} 1\n")
    reused = tmp_path / f"{workdir.PREFIX}reused"  # a live pid, but another process's start time
    reused.mkdir()
    (reused / workdir.OWNER_FILE).write_text(f"{os.getpid()} 1\n")
    old = tmp_path / f"{workdir.PREFIX}old"
    old.mkdir()
    long_ago = time.time() - workdir.UNOWNED_GRACE_S - 60
    os.utime(old, (long_ago, long_ago))
    young = tmp_path / f"{workdir.PREFIX}young"  # another process, an instant before its owner file
    young.mkdir()
    unrelated = tmp_path / "something-else"
    unrelated.mkdir()
    mine = workdir.claim(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([young.name, unrelated.name, mine.name])


def test_keep_newest_deletes_all_but_the_most_recently_written_files(tmp_path):
    for index in range(5):
        path = tmp_path / f"{index}.glb"
        path.write_bytes(b"x")
        os.utime(path, (1_000_000 + index, 1_000_000 + index))
    workdir.keep_newest(tmp_path, 2)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["3.glb", "4.glb"]
