"""The output table: one line per comparison, ours against the baseline, and their ratio."""

from __future__ import annotations

from collections.abc import Sequence

from bench.scenarios import Row

HEADER = ("scenario", "ours", "baseline", "ratio (ours/baseline)")


def _value(seconds_per_op: float, unit: str) -> str:
    if unit == "probes/s":
        return f"{1 / seconds_per_op:,.0f} probes/s"
    if unit == "CPU ms/probe":
        return f"{seconds_per_op * 1000:,.2f} CPU ms/probe"
    return f"{seconds_per_op * 1000:,.1f} ms/run"


def _ratio(row: Row) -> str:
    # The ratio is in the unit as printed: probes/s for throughput (above 1:
    # ours faster), ms/run for wall time (above 1: ours slower).
    if row.unit == "probes/s":
        ratio = 1 / row.ratio
        verdict = "faster" if ratio >= 1 else "slower"
    elif row.unit == "CPU ms/probe":
        ratio = row.ratio
        verdict = "costlier" if ratio >= 1 else "cheaper"
    else:
        ratio = row.ratio
        verdict = "slower" if ratio >= 1 else "faster"
    return f"{ratio:.2f} (ours {verdict})"


def aligned(lines: Sequence[Sequence[str]], *, text_columns: int = 1) -> str:
    """Rows under their header (the first row): text columns left, numbers right."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for index, line in enumerate(lines):
        cells = [c.ljust(w) if i < text_columns else c.rjust(w)
                 for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        out.append(" | ".join(cells).rstrip())
        if index == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


def markdown(lines: Sequence[Sequence[str]]) -> str:
    """The same rows (header first) as a Markdown table, for BENCHMARKS.md."""
    head, *body = lines
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(out + ["| " + " | ".join(line) + " |" for line in body])


def table(rows: Sequence[Row], *, as_markdown: bool = False) -> str:
    lines = [HEADER, *((r.scenario, _value(r.ours, r.unit), _value(r.baseline, r.unit),
                        _ratio(r)) for r in rows)]
    return markdown(lines) if as_markdown else aligned(lines)
