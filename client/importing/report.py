"""What an import did: counts of what it stored, found stored already, and skipped, with reasons."""

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum


class Kind(Enum):
    SESSION = "sessions"
    AGENT = "agents"
    MESSAGE = "messages"
    MULTI_AGENT = "multi-agents"


@dataclass(frozen=True)
class Skipped:
    """Something not imported: ``where`` is its path in the directory, ``counts`` what it held."""

    where: str
    reason: str
    counts: Counter[Kind]


@dataclass(frozen=True)
class Note:
    """A remark that is no failure, e.g. a stored agent whose state has moved on since."""

    where: str
    text: str


@dataclass
class ImportReport:
    """Filled in as the import goes; ``lines()`` is the summary printed at the end."""

    dry_run: bool = False
    imported: Counter[Kind] = field(default_factory=Counter)
    present: Counter[Kind] = field(default_factory=Counter)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def add_imported(self, kind: Kind, count: int = 1) -> None:
        self.imported[kind] += count

    def add_present(self, kind: Kind, count: int = 1) -> None:
        self.present[kind] += count

    def skip(
        self,
        where: str,
        reason: str,
        *,
        sessions: int = 0,
        agents: int = 0,
        messages: int = 0,
        multi_agents: int = 0,
    ) -> None:
        counts = Counter(
            {
                Kind.SESSION: sessions,
                Kind.AGENT: agents,
                Kind.MESSAGE: messages,
                Kind.MULTI_AGENT: multi_agents,
            }
        )
        self.skipped.append(Skipped(where, reason, +counts))

    def note(self, where: str, text: str) -> None:
        self.notes.append(Note(where, text))

    @property
    def has_outcomes(self) -> bool:
        """Whether anything was imported, found stored or skipped so far."""
        return bool(+self.imported or +self.present or self.skipped)

    @property
    def failed(self) -> bool:
        """Whether anything was skipped: the import did not bring everything over."""
        return bool(self.skipped)

    def skipped_counts(self) -> Counter[Kind]:
        total: Counter[Kind] = Counter()
        for each in self.skipped:
            total.update(each.counts)
        return total

    def lines(self) -> list[str]:
        """The summary table, then one line per skipped item and per note."""
        rows = [
            ("would import" if self.dry_run else "imported", self.imported),
            ("already present", self.present),
            ("skipped", self.skipped_counts()),
        ]
        width = max(len(label) for label, _ in rows)
        columns = {
            kind: max(len(kind.value), *(len(str(counts[kind])) for _, counts in rows)) for kind in Kind
        }
        lines = [" " * width + "".join(f"  {kind.value:>{columns[kind]}}" for kind in Kind)]
        for label, counts in rows:
            lines.append(f"{label:<{width}}" + "".join(f"  {counts[kind]:>{columns[kind]}}" for kind in Kind))
        if self.skipped:
            lines.append("skipped:")
            lines.extend(f"  {each.where}: {each.reason}" for each in self.skipped)
        if self.notes:
            lines.append("notes:")
            lines.extend(f"  {each.where}: {each.text}" for each in self.notes)
        if self.dry_run:
            lines.append("dry run: nothing was written")
        return lines
