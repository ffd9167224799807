"""The one table ``python -m bench`` prints: each case's figure, its reference, and the target."""

from collections.abc import Sequence
from dataclasses import dataclass

HEADERS = ("case", "figure", "reference", "ratio", "target", "met")


@dataclass(frozen=True)
class Row:
    case: str
    figure: str
    reference: str
    ratio: str
    target: str
    met: bool | None
    """None: not measured (``skipped`` says why)."""
    skipped: str = ""

    @classmethod
    def skip(cls, case: str, target: str, reason: str) -> "Row":
        return cls(case, "-", "-", "-", target, None, reason)

    def cells(self) -> tuple[str, ...]:
        met = "skipped" if self.met is None else ("yes" if self.met else "no")
        return (self.case, self.figure, self.reference, self.ratio, self.target, met)


def duration(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if reference else "-"


def table(rows: Sequence[Row]) -> str:
    """A Markdown table, aligned for reading in a terminal, with the reasons for skipped rows below."""
    cells = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[column]) for line in cells) for column in range(len(HEADERS))]

    def line(values: Sequence[str]) -> str:
        return (
            "| " + " | ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)) + " |"
        )

    lines = [line(HEADERS), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    lines += [line(row.cells()) for row in rows]
    lines += [f"skipped {row.case}: {row.skipped}" for row in rows if row.met is None]
    return "\n".join(lines)
