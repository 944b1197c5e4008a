"""Convert S3-Rec style sequence files into RecBole atomic files.

Input (the S3-Rec authors' preprocessed benchmark format):

* ``NAME.txt``: one user per line, ``user_id item_id item_id ...``, items in
  chronological order (oldest first), all ids positive integers.
* ``NAME_item2attributes.json`` (optional): ``{"item_id": [attribute_id, ...]}``.

Output, in ``OUTPUT_DIR/NAME/``:

* ``NAME.inter``: ``user_id:token  item_id:token  timestamp:float``, one row per
  interaction; the timestamp is the item's 0-based position in the user's line,
  so RecBole's time ordering reproduces the sequence order.
* ``NAME.item`` (only with attributes): ``item_id:token  attributes:token_seq``,
  one row per item of the ``.txt`` sorted by id; items without attributes get an
  empty field.

Everything is validated and built in memory first; each file is written to a
temporary name next to its target and moved into place only once all are
written, so a failed run leaves existing output untouched. Nothing else in the
output folder is touched (a ``NAME.item`` from an earlier run with attributes
survives a run without them).

Usage::

    python -m recbole_ssl.data.convert --input Beauty.txt \\
        --attributes Beauty_item2attributes.json --output-dir dataset_atomic \\
        --name amazon-beauty
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)

Sequences = list[tuple[int, list[int]]]
INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float"
ITEM_HEADER = "item_id:token\tattributes:token_seq"
_POSITIVE_INT = re.compile(r"[0-9]+")


class ConvertError(ValueError):
    """Invalid input or output for the converter; the message names the file."""


class _Pairs(list):
    """A JSON object kept as its (key, value) pairs, so duplicated keys show."""


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ConvertError(f"{path}: {what} not found (or not a regular file)")
    return path


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvertError(f"{path}: cannot read file: {exc}") from exc


def _parse_id(token: str, path: Path, lineno: int, what: str) -> int:
    if not _POSITIVE_INT.fullmatch(token) or int(token) <= 0:
        raise ConvertError(
            f"{path}:{lineno}: {what} id {token!r} is not a positive integer"
        )
    return int(token)


def read_sequences(path: str | os.PathLike) -> Sequences:
    """Parse a ``user item item ...`` file into ``[(user, [items...]), ...]``."""
    path = _existing_file(path, "input file")
    text = _read_text(path).rstrip()
    if not text:
        raise ConvertError(f"{path}: no user lines found")
    sequences: Sequences = []
    first_line: dict[int, int] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        fields = line.split()
        if len(fields) < 2:
            raise ConvertError(
                f"{path}:{lineno}: expected a user id and at least one item id, "
                f"got {len(fields)} field(s)"
            )
        user = _parse_id(fields[0], path, lineno, "user")
        if user in first_line:
            raise ConvertError(
                f"{path}:{lineno}: user id {user} duplicated "
                f"(first seen on line {first_line[user]})"
            )
        first_line[user] = lineno
        items = [_parse_id(token, path, lineno, "item") for token in fields[1:]]
        sequences.append((user, items))
    return sequences


def _attribute_entry(
    path: Path, key: str, values: object, items: set[int]
) -> tuple[int, list[int]]:
    if not _POSITIVE_INT.fullmatch(key) or int(key) <= 0:
        raise ConvertError(f"{path}: key {key!r} is not a positive integer item id")
    if type(values) is not list or any(type(v) is not int for v in values):
        raise ConvertError(f"{path}: value of key {key!r} is not a list of integers")
    if int(key) not in items:
        raise ConvertError(
            f"{path}: item id {int(key)} (key {key!r}) does not occur in the input file"
        )
    return int(key), values


def read_attributes(path: str | os.PathLike, items: set[int]) -> dict[int, list[int]]:
    """Parse an ``item2attributes`` JSON, checking every key is one of ``items``."""
    path = _existing_file(path, "attribute file")
    try:
        pairs = json.loads(_read_text(path), object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise ConvertError(
            f"{path}:{exc.lineno}: malformed JSON: {exc.msg} (column {exc.colno})"
        ) from exc
    if not isinstance(pairs, _Pairs):
        raise ConvertError(f"{path}: expected a JSON object mapping item ids to lists")
    attributes: dict[int, list[int]] = {}
    for key, values in pairs:
        item, attrs = _attribute_entry(path, key, values, items)
        if item in attributes:
            raise ConvertError(f"{path}: item id {item} appears twice (key {key!r})")
        attributes[item] = attrs
    return attributes


def _inter_lines(sequences: Sequences) -> list[str]:
    lines = [INTER_HEADER]
    for user, seq in sequences:
        lines.extend(f"{user}\t{item}\t{pos}" for pos, item in enumerate(seq))
    return lines


def _item_lines(items: list[int], attributes: dict[int, list[int]]) -> list[str]:
    lines = [ITEM_HEADER]
    for item in items:
        lines.append(f"{item}\t" + " ".join(map(str, attributes.get(item, []))))
    return lines


def _write_lines(path: Path, lines: list[str]) -> None:
    with open(path, "x", encoding="utf-8", newline="\n") as handle:
        handle.write("\n".join(lines) + "\n")


def write_atomically(folder: Path, files: dict[str, list[str]]) -> None:
    """Write every file to a temporary name, then move all of them into place."""
    created = not folder.exists()
    temps: dict[Path, Path] = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, lines in files.items():
            temp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
            temps[temp] = folder / name
            _write_lines(temp, lines)
        for temp, target in temps.items():
            os.replace(temp, target)
    except OSError as exc:
        for temp in temps:
            temp.unlink(missing_ok=True)
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise ConvertError(f"{folder}: cannot write output: {exc}") from exc


def convert(
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    name: str,
    attributes_path: str | os.PathLike | None = None,
) -> dict[str, int]:
    """Convert one dataset and return its statistics.

    Returns ``{"users", "items", "interactions", "attributes"}``, where
    ``attributes`` counts distinct attribute ids over the written items (0 when
    no attribute file is given).
    """
    if not name or name in {".", ".."} or "/" in name or os.sep in name:
        raise ConvertError(
            f"invalid dataset name {name!r}: must be a plain folder name"
        )
    sequences = read_sequences(input_path)
    items = sorted({item for _, seq in sequences for item in seq})
    files = {f"{name}.inter": _inter_lines(sequences)}
    distinct: set[int] = set()
    if attributes_path is not None:
        attributes = read_attributes(attributes_path, set(items))
        distinct = {a for values in attributes.values() for a in values}
        files[f"{name}.item"] = _item_lines(items, attributes)
    folder = Path(output_dir) / name
    write_atomically(folder, files)
    return {
        "users": len(sequences),
        "items": len(items),
        "interactions": sum(len(seq) for _, seq in sequences),
        "attributes": len(distinct),
    }


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_ssl.data.convert",
        description="Convert an S3-Rec sequence file into RecBole atomic files.",
    )
    parser.add_argument("--input", required=True, help="user item item ... file")
    parser.add_argument("--attributes", help="item2attributes JSON file (optional)")
    parser.add_argument("--output-dir", required=True, help="parent output folder")
    parser.add_argument("--name", required=True, help="dataset name (sub-folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (0 ok, 2 invalid input)."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        stats = convert(args.input, args.output_dir, args.name, args.attributes)
    except ConvertError as exc:
        message = " ".join(str(exc).split())
        sys.stderr.write(f"convert: error: {message}\n")
        return 2
    summary = ", ".join(f"{count} {key}" for key, count in stats.items())
    logger.info("%s: %s -> %s", args.name, summary, Path(args.output_dir) / args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
