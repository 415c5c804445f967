"""The state dir's child journal: what a crashed daemon leaves is read back exactly."""

from __future__ import annotations

from pathlib import Path

from procward._os import Leftover
from procward.engine import _journal
from procward.engine._journal import ChildJournal


def test_leftovers_are_the_children_added_and_never_removed(tmp_path: Path) -> None:
    """Only children still recorded as live are leftovers; a torn last line is ignored."""
    journal = ChildJournal(tmp_path)
    journal.open()
    journal.add(101, 1700000000.5, "web")
    journal.add(102, 1700000001.25, "worker:1")
    journal.remove(101)
    journal.close()
    with journal.path.open("a") as f:
        f.write("+ 103 17000")  # a crash in the middle of a write
    assert ChildJournal(tmp_path).leftovers() == [Leftover(102, 1700000001.25, "worker:1")]


def test_a_new_journal_starts_empty(tmp_path: Path) -> None:
    """open() starts afresh once the leftovers have been dealt with."""
    first = ChildJournal(tmp_path)
    first.open()
    first.add(7, 1.0, "a")
    first.close()
    second = ChildJournal(tmp_path)
    assert [lo.pid for lo in second.leftovers()] == [7]
    second.open()
    second.close()
    assert ChildJournal(tmp_path).leftovers() == []


def test_compaction_keeps_exactly_the_live_children(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """After many starts and exits the file is rewritten with only the live entries."""
    monkeypatch.setattr(_journal, "_COMPACT_AFTER", 10)
    journal = ChildJournal(tmp_path)
    journal.open()
    journal.add(1, 1.0, "keeper")
    for pid in range(100, 125):
        journal.add(pid, float(pid), "churn")
        journal.remove(pid)
    journal.add(2, 2.0, "late")
    journal.close()
    text = journal.path.read_text()
    assert len(text.splitlines()) < 25  # compacted, not 52 lines
    assert ChildJournal(tmp_path).leftovers() == [Leftover(1, 1.0, "keeper"),
                                                 Leftover(2, 2.0, "late")]
