"""recbole_ssl.data.atomic: check an atomic file before RecBole's loader reads it.

RecBole reads atomic files with pandas and says little when one is malformed: a row
with a missing timestamp gets NaN and, later, the column's mean, which silently
reorders that user's sequence and changes the test target; a short row, a second
header line or a bad type ends in a traceback from deep inside pandas. Here every such
file is read once, line by line, and the first problem is one line naming the file,
the line, the field and what was expected.
"""

import os

from recbole_ssl.errors import AtomicFileError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity")


def parse_header(path, header, separator):
    """``[(name, type)]`` of a header line ``name:type<sep>name:type ...``."""
    if not header.strip():
        raise AtomicFileError(
            f"{path}: line 1 is empty; expected a header of name:type columns "
            f"({', '.join(FIELD_TYPES)})"
        )
    columns = []
    for cell in header.split(separator):
        name, colon, ftype = cell.partition(":")
        if not colon or not name or ftype not in FIELD_TYPES:
            raise AtomicFileError(
                f"{path}, line 1: column {cell!r} is not name:type with type one of "
                f"{list(FIELD_TYPES)} (columns are separated by {separator!r})"
            )
        columns.append((name, ftype))
    return columns


def check_atomic_file(path, required, load_col, separator, seq_separator, encoding):
    """Raise an :class:`AtomicFileError` at the first problem of atomic file ``path``.

    Args:
        required: field names the file must have (e.g. user, item and time fields).
        load_col: the fields RecBole will load from it (None: all); only their values
            are checked, but every row must have as many fields as the header.
        separator, seq_separator, encoding: RecBole's ``field_separator``,
            ``seq_separator`` and ``encoding``.

    Checks: a header line of ``name:type`` columns, no name twice, the required
    columns; at least one row; every non-blank row with as many fields as the header;
    no header line repeated; in each loaded column no empty token or float, and
    floats (and each element of a float sequence) that parse as finite numbers.
    """
    name = os.path.basename(path)
    with open(path, encoding=encoding, newline="") as f:
        try:
            text = f.read()
        except UnicodeDecodeError as e:
            raise AtomicFileError(
                f"{path}: not readable as {encoding} text ({e.reason} at byte "
                f"{e.start})"
            ) from None
    if "\r" in text:
        line = text[: text.index("\r")].count("\n") + 1
        raise AtomicFileError(
            f"{path}, line {line}: a carriage return (Windows line ends?); RecBole "
            "reads lines ended by \\n only: convert the file (e.g. dos2unix)"
        )
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise AtomicFileError(
            f"{path}: the file is empty; expected a header line of name:type columns "
            "and one row per line"
        )
    columns = parse_header(path, lines[0], separator)
    names = [c[0] for c in columns]
    for field in names:
        if names.count(field) > 1:
            raise AtomicFileError(f"{path}, line 1: column {field!r} appears twice")
    missing = [field for field in required if field not in names]
    if missing:
        raise AtomicFileError(
            f"{path}: no column {missing[0]!r}, which this run needs (header: "
            f"{', '.join(names)}); set the field names in the config (e.g. "
            "USER_ID_FIELD, ITEM_ID_FIELD, TIME_FIELD) or add the column"
        )
    checked = [
        (i, field, ftype)
        for i, (field, ftype) in enumerate(columns)
        if load_col is None or field in load_col
    ]
    rows = 0
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue  # RecBole's reader skips blank lines too
        if line == lines[0]:
            raise AtomicFileError(
                f"{path}, line {number}: the header line again; a file has one header"
            )
        cells = line.split(separator)
        if len(cells) != len(columns):
            raise AtomicFileError(
                f"{path}, line {number}: {len(cells)} fields, expected "
                f"{len(columns)} ({', '.join(names)}) separated by {separator!r}"
            )
        rows += 1
        for i, field, ftype in checked:
            value = cells[i]
            if ftype in ("token", "float") and not value.strip():
                raise AtomicFileError(
                    f"{path}, line {number}: field {field!r} is empty; expected "
                    f"{'a number' if ftype == 'float' else 'a value'}"
                )
            if ftype == "float" and not _is_number(value):
                raise AtomicFileError(
                    f"{path}, line {number}: field {field!r} is {value!r}; expected "
                    "a finite number (its header says float)"
                )
            if ftype == "float_seq":
                for element in filter(None, value.split(seq_separator)):
                    if not _is_number(element):
                        raise AtomicFileError(
                            f"{path}, line {number}: field {field!r} holds "
                            f"{element!r}; expected numbers separated by "
                            f"{seq_separator!r}"
                        )
    if rows == 0:
        raise AtomicFileError(f"{path}: a header and no rows ({name} holds no data)")
