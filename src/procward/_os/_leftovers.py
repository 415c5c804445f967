"""What is left of a child an earlier daemon recorded: its process tree, found safely.

A daemon killed with SIGKILL (or a crashed one) leaves its children's pids and
create times in the state dir's journal; the next daemon ends those trees
before it starts anything. A pid may belong to another process by then, so a
process counts only if its create time says it is the one recorded, or that it
came after it as its offspring.
"""

from __future__ import annotations

from collections.abc import Callable

import psutil

from procward._os._base import SAME_PROCESS, Leftover

__all__ = ["leftover_tree"]


def leftover_tree(leftover: Leftover,
                  offspring: Callable[[psutil.Process], bool]) -> list[psutil.Process]:
    """The processes left of ``leftover``'s tree, each with its descendants.

    Its leader, if its pid still belongs to the process recorded; and every
    process ``offspring`` claims for it (on POSIX a member of its process group,
    on Windows a child whose parent pid is the leader's) created after it:
    those outlive a dead leader. Nothing when the pid is another process's now,
    since then the old tree is gone too (the kernel never hands out a pid still
    used as a group id; Windows keeps no groups to follow).
    """
    victims: dict[int, psutil.Process] = {}

    def take(proc: psutil.Process) -> None:
        victims[proc.pid] = proc
        for child in proc.children(recursive=True):
            victims[child.pid] = child

    try:
        leader = psutil.Process(leftover.pid)
        if abs(leader.create_time() - leftover.create_time) >= SAME_PROCESS:
            return []
        take(leader)
    except psutil.NoSuchProcess:
        pass
    except psutil.Error:
        return []
    for proc in psutil.process_iter():
        try:
            if (proc.pid not in victims and offspring(proc)
                    and proc.create_time() >= leftover.create_time - SAME_PROCESS):
                take(proc)
        except (OSError, psutil.Error):
            continue
    return list(victims.values())
