"""recbole_ssl.model_pages: the generated parts of each model's page.

``docs/models/<Model>.md`` holds prose written by hand and generated sections between
``<!-- report:begin NAME -->`` and ``<!-- report:end NAME -->`` that
``python -m recbole_ssl.report`` writes (and ``--check`` compares):

* ``docstring``: the model class's docstring (what it computes, and its NOTE of every
  place it differs from the paper or the authors' code), from
  ``recbole_ssl/model/<model>.py``, RST markup turned into markdown;
* ``params``: the hyper-parameter table, from three files:

  - the model's YAML (``recbole_ssl/properties/model/<Model>.yaml``): every key the
    model reads, its default and the ``# (type) meaning`` comment;
  - its paper preset (``properties/presets/<Model>-paper.yaml``): the paper's value
    and where it comes from (``paper:``, ``script:``); preset keys the model's YAML
    does not set take their default from the plugin's ``overall.yaml``, else
    RecBole's;
  - its search space for ``run_hyper.py`` (``properties/hyper/<Model>.test``,
    RecBole's params-file format): the tuning range.

A key of the preset or the search space that the model's YAML does not know and no
overall default gives is an error naming the file and key, so the table cannot drift
from what the model reads.
"""

import ast
import functools
import os
import re
from collections import OrderedDict
from pathlib import Path

import yaml

from recbole_ssl.paths import (
    HYPER_DIR,
    MODEL_DIR,
    PACKAGE_DIR,
    PRESETS_DIR,
    PROPERTIES_DIR,
)

# a YAML line ``key: value   # comment`` at the top level (not indented)
_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(.*?)(?:\s+#\s?(.*))?$")
_TYPED = re.compile(r"^\(([\w ]+)\)\s*(.*)$")
HYPER_KINDS = ("choice", "uniform", "quniform", "loguniform")


class ModelPageError(ValueError):
    """A model's YAML, preset or search space that the page cannot be built from."""


def _plain(value):
    """A YAML value as written in a RecBole config file (``~`` for None)."""
    if value is None:
        return "~"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


def yaml_entries(path):
    """``{key: (value, comment)}`` of the top-level keys of a YAML config file, in
    file order; the value as YAML reads it, the comment the text after ``#`` on the
    key's line ('' without one)."""
    text = Path(path).read_text(encoding="utf-8")
    values = yaml.safe_load(text) or {}
    entries = OrderedDict()
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and match.group(1) in values:
            key = match.group(1)
            entries[key] = (values[key], (match.group(3) or "").strip())
    missing = [k for k in values if k not in entries]
    if missing:
        raise ModelPageError(f"{path}: keys {missing} are not written 'key: value'")
    return entries


def hyper_ranges(path):
    """``{key: range}`` of a RecBole params file (``key choice [a,b]``,
    ``key loguniform -8,0``, ...); ``{}`` where there is no file."""
    ranges = OrderedDict()
    if not os.path.isfile(path):
        return ranges
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.strip().split(" ")  # as RecBole's HyperTuning reads the file
        if len(parts) < 3:
            continue  # RecBole skips these lines too
        key, kind, values = parts[0], parts[1], "".join(parts[2:])
        if kind not in HYPER_KINDS:
            raise ModelPageError(
                f"{path}, line {number}: expected 'key <{'|'.join(HYPER_KINDS)}> "
                f"<values>' (RecBole's params file; no comments), got {line!r}"
            )
        ranges[key] = f"{kind} {values}"
    return ranges


@functools.lru_cache(maxsize=1)
def _overall_defaults():
    """The defaults of keys no model YAML sets: the plugin's ``overall.yaml``, then
    RecBole's (RecBole's own files in RecBole's order)."""
    import recbole

    base = Path(recbole.__file__).resolve().parent / "properties"
    defaults = {}
    for path in (
        base / "overall.yaml",
        base / "quick_start_config" / "sequential.yaml",
        PROPERTIES_DIR / "overall.yaml",
    ):
        if path.is_file():
            defaults.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return defaults


@functools.lru_cache(maxsize=None)
def model_defaults(model):
    """Every default a run of the plugin's ``model`` starts from: its YAML's over
    :func:`_overall_defaults` (those alone for a model without a YAML)."""
    path = MODEL_DIR / f"{model}.yaml"
    own = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {**_overall_defaults(), **(own or {})}


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def params_section(model):
    """The markdown table of ``model``'s hyper-parameters (see the module docstring)."""
    own = yaml_entries(MODEL_DIR / f"{model}.yaml")
    preset_path = PRESETS_DIR / f"{model}-paper.yaml"
    preset = yaml_entries(preset_path) if preset_path.is_file() else OrderedDict()
    hyper_path = HYPER_DIR / f"{model}.test"
    ranges = hyper_ranges(hyper_path)
    overall = _overall_defaults()
    lines = [
        "| key | type | default | meaning | paper's setting (source) | tuning range |",
        "|---|---|---|---|---|---|",
    ]
    keys = list(own) + [k for k in list(preset) + list(ranges) if k not in own]
    for key in dict.fromkeys(keys):
        if key in own:
            default, comment = own[key]
            match = _TYPED.match(comment)
            kind, meaning = match.groups() if match else ("", comment)
        elif key in overall:
            default, kind = overall[key], type(overall[key]).__name__
            meaning = "RecBole / plugin-wide key (overall.yaml)"
        else:
            source = preset_path if key in preset else hyper_path
            raise ModelPageError(
                f"{source}: key {key!r} is neither in {model}.yaml nor an overall "
                "default"
            )
        paper = ""
        if key in preset:
            value, note = preset[key]
            paper = f"`{_plain(value)}`" + (f" ({note})" if note else "")
        tuning = f"`{ranges[key]}`" if key in ranges else ""
        lines.append(
            "| "
            + " | ".join(
                _cell(c)
                for c in (f"`{key}`", kind, f"`{_plain(default)}`", meaning, paper)
            )
            + f" | {_cell(tuning)} |"
        )
    source = [f"`recbole_ssl/properties/model/{model}.yaml`"]
    if preset:
        source.append(f"`presets/{model}-paper.yaml` (the paper's setting)")
    if ranges:
        source.append(
            f"`hyper/{model}.test` (the tuning range: the search space for "
            "`run_hyper.py`, RecBole's params-file format)"
        )
    lines += [
        "",
        "Generated by `python -m recbole_ssl.report` from " + ", ".join(source) + ".",
    ]
    return "\n".join(lines)


def model_pages(docs_dir):
    """``{model: page path}`` of the model pages under ``docs_dir`` that have a
    ``params`` section."""
    pages = OrderedDict()
    if not os.path.isdir(docs_dir):
        return pages
    for name in sorted(os.listdir(docs_dir)):
        path = os.path.join(docs_dir, name)
        if name.endswith(".md") and (MODEL_DIR / f"{name[:-3]}.yaml").is_file():
            pages[name[:-3]] = path
    return pages


def class_docstring(model):
    """The docstring of class ``model`` in ``recbole_ssl/model/<model>.py``, read
    without importing it."""
    path = PACKAGE_DIR / "model" / f"{model.lower()}.py"
    if not path.is_file():
        raise ModelPageError(f"{path}: no such file for model {model!r}")
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and node.name == model:
            doc = ast.get_docstring(node)
            if not doc:
                raise ModelPageError(f"{path}: class {model} has no docstring")
            return doc
    raise ModelPageError(f"{path}: no class {model}")


def docstring_section(model):
    """``model``'s class docstring as markdown: ````code```` and ``:role:`name```
    become ```code``` (also where a span runs onto the next line), the indented NOTE
    bullets become a markdown list."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", class_docstring(model))
    text = re.sub(r"``(.+?)``", r"`\1`", text, flags=re.S)
    lines = [
        line[4:] if line.startswith("    ") else line for line in text.splitlines()
    ]
    return "\n".join(lines)
