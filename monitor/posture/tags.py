"""`tag=value; tag=value` records (TLS-RPT, MTA-STS TXT, BIMI): one small parser."""

from __future__ import annotations


def parse_tags(record: str) -> dict[str, str] | str:
    """The tags of a record, first occurrence wins; a string saying what is wrong if a
    part has no `=`."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        if not eq:
            return f"tag {part.strip()!r} has no '='"
        tags.setdefault(name.strip().lower(), value.strip())
    return tags
