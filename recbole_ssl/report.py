"""recbole_ssl.report: results pages and figures rendered from the run records.

    python -m recbole_ssl.report --dataset amazon-beauty          # write
    python -m recbole_ssl.report --check                          # all datasets; exit 1 if stale

Reads ``<records>/<dataset>/*.json`` (default ``results/runs``, as ``record_dir``
writes them) and writes, for each dataset:

* the generated sections of ``<results>/<dataset>.md`` (default ``results/``): the
  results table (one row per model and setting, i.e. the keys that differ from the
  defaults; seeds, mean +- std of every metric, epochs, seconds per epoch, the paper's
  figure and our ratio to it), the papers' figures, the figures, and one line per run
  (command, seed, machine, wall time, commit, record). Each section sits between
  ``<!-- report:begin NAME -->`` and ``<!-- report:end NAME -->``; everything outside
  the markers is prose written by hand, which the tool leaves alone. A page without
  a section gets it appended; a new page gets a title and every section; a section
  with a missing or doubled marker is an error naming the page, never a guess.
* PNG figures in ``<results>/figures/``: validation NDCG@20 per epoch (one line per
  model, a band over seeds; and one panel per model with every setting) and test
  NDCG@20 and NDCG@10 per model, each seed a dot, against the papers' values. Each PNG
  carries a digest of what it shows, which ``--check`` compares.
* the section of ``--readme`` (default ``README.md``) named ``<dataset>:models``, the
  "which model" table (the test figure; per model its cost, test NDCG@20 under CE and
  under its paper preset, and whether its paper's claim holds), only where the README
  has the markers;
* in each model page ``--docs/<Model>.md`` (default ``docs/models``), the section
  ``<dataset>:results`` (that model's rows of the results table) where the page has
  the markers, and the sections ``docstring`` (its class docstring, NOTE included) and
  ``params`` (its hyper-parameters, from its YAML, its paper preset and its search
  space): :mod:`recbole_ssl.model_pages`.

``--check`` renders everything in memory and exits 1, naming each page, section or
figure that differs from what the records give.
"""

import argparse
import glob
import hashlib
import io
import json
import math
import os
import re
import sys
from collections import OrderedDict
from pathlib import Path

import yaml

from recbole_ssl.model_pages import (
    ModelPageError,
    docstring_section,
    model_defaults,
    model_pages,
    params_section,
)
from recbole_ssl.record import (
    NON_SETTING_KEYS,
    PRESETS_DIR,
    load,
    setting_of,
    write_atomic,
)

PAPERS_FILE = Path(__file__).resolve().parent / "properties" / "papers.yaml"
METRICS = ("hit@5", "hit@10", "hit@20", "ndcg@5", "ndcg@10", "ndcg@20")
MODEL_ORDER = ("SASRec", "CL4SRec", "CoSeRec", "ICLRec", "S3Rec", "DSSRec", "MMInfoRec")
# settings that are their own model in the papers' tables
VARIANTS = {("S3Rec", json.dumps({"item_attribute": None})): "S3Rec_ISP"}
FIGURE_VERSION = 1  # bump when the drawing code changes, so --check sees it
BEGIN = "<!-- report:begin {} -->"
END = "<!-- report:end {} -->"
SECTION_TITLES = OrderedDict(
    [
        ("results", "Results (test set)"),
        ("claims", "Each paper's claim against SASRec"),
        ("groups", "Test NDCG@20 by user group (ICLRec's Figure 3)"),
        ("papers", "Published figures"),
        ("figures", "Figures"),
        ("runs", "Runs"),
    ]
)


class ReportError(ValueError):
    """Bad input to the report: reported in one line."""


# ---------------------------------------------------------------- records and rows


def load_records(records_dir, dataset):
    """Every ended record of ``dataset``, sorted by file name; a bad file is an error,
    a ``running`` one is left out (and counted on stderr)."""
    paths = sorted(glob.glob(os.path.join(records_dir, dataset, "*.json")))
    records, skipped, loaded = [], [], []
    for path in paths:
        try:
            record = load(path)
        except ValueError as e:
            raise ReportError(str(e)) from None
        if record.get("dataset") != dataset:
            raise ReportError(
                f"{path}: dataset is {record.get('dataset')!r}, but the file is in "
                f"the folder of {dataset!r}"
            )
        record["_path"] = path
        loaded.append(record)
        if record["status"] == "running":
            # in progress, or killed outright (SIGKILL): no end to report yet
            skipped.append(path)
            continue
        records.append(record)
    # a run from pre_model_path whose pretraining's record is here (ended or not)
    by_name = {os.path.basename(r["_path"]): r for r in loaded}
    for record in records:
        source = by_name.get((record.get("pretraining") or {}).get("record"))
        if source is not None and source is not record:
            record["_pretraining"] = source
    if skipped:
        sys.stderr.write(
            f"recbole_ssl.report: {len(skipped)} record(s) of {dataset} still "
            f"'running' left out (in progress, or killed): {', '.join(skipped)}\n"
        )
    return records


def datasets_in(records_dir):
    return sorted(
        name
        for name in os.listdir(records_dir)
        if os.path.isdir(os.path.join(records_dir, name))
    )


def setting_key(record):
    """The row a record belongs to: its setting, without seed and output keys (as
    :func:`recbole_ssl.record.setting_of` filters them today). A run from shipped
    presets (``presets``), or one whose configuration holds every value of its model's
    paper preset, is ``{"preset": names}`` plus the keys it set otherwise. A run from
    ``pre_model_path`` whose pretraining's record is among those loaded
    (``_pretraining``, :func:`load_records`) has, instead of the checkpoint's path, that
    pretraining's setting, epochs and seed (``own`` where it is the run's): fine-tunings
    of one pretraining setting, one pretraining per seed, are one row."""
    setting = setting_of(record.get("setting") or {})
    presets = record.get("presets") or []
    own = f"{record.get('model')}-paper"
    values = preset_values(own)
    # the run's full configuration where recorded: its setting names only the keys
    # that differ from the defaults, and a preset repeats some defaults
    config = record.get("config") or setting
    if (
        not presets
        and values
        and all(
            k in config and json.dumps(config[k]) == json.dumps(v)
            for k, v in values.items()
        )
    ):
        # every value of the model's paper preset, given some other way: e.g. the
        # evaluation of a preset run's checkpoint, whose settings come from it
        presets = [own]
    if presets:
        given = {}
        for name in presets:
            given.update(preset_values(name))
        setting = {
            "preset": "+".join(presets),
            **{
                k: v
                for k, v in setting.items()
                if k not in given or json.dumps(given[k]) != json.dumps(v)
            },
            # a preset key the run set back to its model's default: the setting
            # omits it (it is a default), yet the run differs from the preset there;
            # and a key the preset gained after the run: the run had its default
            **{
                k: ran
                for k, v in given.items()
                if (ran := _ran_with(record, config, k)) is not _NONE
                and json.dumps(ran) != json.dumps(v)
            },
        }
    source = record.get("_pretraining")
    if source is not None and "pre_model_path" in setting:
        del setting["pre_model_path"]
        setting["pretraining"] = pretraining_label(record, source)
    return json.dumps(setting, sort_keys=True)


def pretraining_label(record, source):
    """``(<the pretraining's setting>; <epochs> epochs; seed own|<seed>)``: the run
    ``source`` (a record) whose checkpoint after ``record['pretraining']['epoch']``
    (counted from 0) ``record`` started from."""
    epoch = record["pretraining"].get("epoch")
    seed = "own" if source["seed"] == record["seed"] else source["seed"]
    return (
        f"({describe_setting(json.loads(setting_key(source)))}; "
        f"{'?' if epoch is None else epoch + 1} epochs; seed {seed})"
    )


_PRESETS = {}
_NONE = object()


def _ran_with(record, config, key):
    """``key``'s value in the run of ``record`` (``config``: its recorded
    configuration, else its setting), or ``_NONE`` where that is not known. A full
    recorded configuration without the key is from before the key existed; a key is
    added with the default that keeps the model's behaviour, so the run had that
    default (:func:`recbole_ssl.model_pages.model_defaults`)."""
    if key in config:
        return config[key]
    if "config" not in record:
        return _NONE
    return model_defaults(record.get("model")).get(key, _NONE)


def preset_values(name):
    """The setting keys of the shipped preset ``name`` ({} if it is gone): not those
    that only say how a run executes (``NON_SETTING_KEYS``, e.g. ``flush_denormal``),
    which no more decide a preset's row than a run's."""
    if name not in _PRESETS:
        path = os.path.join(PRESETS_DIR, f"{name}.yaml")
        try:
            with open(path, encoding="utf-8") as f:
                _PRESETS[name] = yaml.safe_load(f) or {}
        except OSError:
            _PRESETS[name] = {}
    return {k: v for k, v in _PRESETS[name].items() if k not in NON_SETTING_KEYS}


def paper_key(model, key):
    return VARIANTS.get((model, key), model)


def describe_setting(setting):
    if not setting:
        return "defaults"
    parts = [f"preset {setting['preset']}"] if "preset" in setting else []
    parts += [f"{k}={_value(v)}" for k, v in sorted(setting.items()) if k != "preset"]
    return ", ".join(parts)


def _value(v):
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return "None" if v is None else str(v)


def _model_rank(model):
    return (MODEL_ORDER.index(model), "") if model in MODEL_ORDER else (99, model)


def final_stage_epochs(record):
    epochs = record.get("epochs") or []
    if not epochs:
        return []
    stage = epochs[-1]["stage"]
    return [e for e in epochs if e["stage"] == stage]


def epochs_run(record):
    """Epochs trained: ``pretrain + finetune`` for two-stage runs (S3-Rec)."""
    count = record.get("epochs_run") or len(final_stage_epochs(record)) or None
    pretrain = record.get("pretrain_epochs_run")
    return f"{pretrain} + {count}" if pretrain and count else count


class Row:
    """The runs of one model and setting: one per seed (or more)."""

    def __init__(self, model, key, records):
        self.model = model
        self.key = key
        self.setting = json.loads(key)
        self.records = sorted(records, key=lambda r: (r["seed"], r["_path"]))
        self.paper_model = paper_key(model, key)
        self.headline = False  # set by build_rows

    @property
    def is_default(self):
        return not self.setting or self.paper_model != self.model

    @property
    def transcribed(self):
        return any(r.get("transcribed") for r in self.records)

    @property
    def cut_off(self):
        return any(r["status"] != "finished" for r in self.records)

    @property
    def marks(self):
        """The table's marks: † a run cut off, ‡ a run transcribed."""
        return ("†" if self.cut_off else "") + ("‡" if self.transcribed else "")

    def values(self, metric):
        return [r["test"][metric] for r in self.records if metric in r["test"]]

    def mean_std(self, metric):
        values = self.values(metric)
        if not values:
            return None, None
        mean = sum(values) / len(values)
        if len(values) < 2:
            return mean, None
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
        return mean, math.sqrt(var)

    @property
    def loss_type(self):
        """The next-item loss the runs trained with (the protocol a row is compared
        within); records without a config (transcribed) trained with CE."""
        return (self.records[0].get("config") or {}).get("loss_type") or "CE"

    @property
    def protocol(self):
        """What the row is compared within: ``preset`` for runs of a paper preset
        (each paper measures its gain against its SASRec, whatever the model's own
        loss: DSSRec's preset trains with an in-batch seq2item loss and MMInfoRec's
        with MINCE alone, both under loss_type CE), else the loss_type."""
        return "preset" if "preset" in self.setting else self.loss_type

    def seconds_per_epoch(self):
        """Mean training seconds per epoch of the row's runs on a CPU (a run on a GPU
        is not comparable with the CPU runs that every other figure comes from)."""
        seconds = [
            e["train_seconds"]
            for r in self.records
            if not (r.get("machine") or {}).get("gpu")
            for e in final_stage_epochs(r)
            if e.get("train_seconds") is not None
        ]
        return sum(seconds) / len(seconds) if seconds else None


def build_rows(records):
    """Rows of the results table: training runs with test figures (cut off or not),
    except those a rerun of the same run replaces (``superseded_by``) and those that
    tested the last epoch's weights instead of the best epoch's (``saved=False``)."""
    groups = OrderedDict()
    for record in records:
        if record.get("kind") != "train" or not record.get("test"):
            continue
        if record.get("superseded_by") or record.get("tested") == "last":
            continue  # replaced by a rerun; or not the best epoch's model tested
        groups.setdefault((record["model"], setting_key(record)), []).append(record)
    for (model, key), group in groups.items():
        seeds = [r["seed"] for r in group]
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:  # a rerun counted as another seed would shrink the p-values
            names = ", ".join(
                os.path.basename(r.get("_path", "?"))
                for r in group
                if r["seed"] in twice
            )
            raise ReportError(
                f"{model}, setting {key}: seed {twice[0]} recorded more than once "
                f"({names}); mark the replaced record superseded_by the other"
            )
    rows = [Row(model, key, group) for (model, key), group in groups.items()]
    rows.sort(key=lambda r: (_model_rank(r.model), r.key != "{}", r.key))
    # one headline row per model (as the papers name them): its defaults, else the
    # setting with the most seeds
    for name in dict.fromkeys(r.paper_model for r in rows):
        candidates = [r for r in rows if r.paper_model == name]
        defaults = [r for r in candidates if r.is_default]
        best = (
            defaults[0] if defaults else max(candidates, key=lambda r: len(r.records))
        )
        for row in candidates:
            row.headline = row is best
    return rows


# ---------------------------------------------------------------- papers


def load_papers(path=PAPERS_FILE):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def paper_figure(papers, dataset, model):
    """``(source, metrics)`` of the first full-ranking source of ``model``, or None."""
    for source in (papers.get(dataset) or {}).get(model) or []:
        if source.get("protocol") == "full":
            return source
    return None


def compared_metric(source):
    for metric in ("ndcg@20", "ndcg@10"):
        if metric in source["metrics"]:
            return metric
    return None


# ---------------------------------------------------------------- markdown sections


def table_row(cells):
    """A markdown table row; a ``|`` or a line break inside a cell is escaped."""
    return (
        "| "
        + " | ".join(" ".join(str(c).split()).replace("|", "\\|") for c in cells)
        + " |"
    )


def fmt(value, digits=4):
    return "" if value is None else f"{value:.{digits}f}"


def fmt_mean_std(mean, std):
    if mean is None:
        return ""
    return fmt(mean) if std is None else f"{fmt(mean)} ± {fmt(std)}"


def _slash(values):
    return "/".join("?" if v is None else str(v) for v in values)


def baselines(rows):
    """``{protocol: the SASRec row each row of that protocol is tested against}``
    (:attr:`Row.protocol`): for ``preset``, SASRec's own preset row; for a
    loss_type, the SASRec row of that loss, its defaults or its own preset first
    (not a variant with other keys), then the one with the most seeds, then its
    headline row."""
    own = ({}, {"preset": "SASRec-paper"})

    def rank(row):
        return (row.setting in own, len(row.records), row.headline)

    chosen = {}
    for row in rows:
        if row.model != "SASRec":
            continue
        keys = [row.loss_type] + (["preset"] if row.setting == own[1] else [])
        for protocol in keys:
            if protocol not in chosen or rank(row) > rank(chosen[protocol]):
                chosen[protocol] = row
    return chosen


def welch_p(values, others):
    """Two-sided Welch t-test p-value of two samples; None below two values each or
    with no spread at all."""
    if len(values) < 2 or len(others) < 2:
        return None
    import warnings

    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # equal values: scipy warns, and p is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(values, others, equal_var=False).pvalue)
    return p if math.isfinite(p) else None


def results_section(rows, papers, dataset, page_dir, only=None):
    head = (
        "| model | setting | seeds | "
        + " | ".join(m.replace("hit", "HR").replace("ndcg", "NDCG") for m in METRICS)
        + " | p vs SASRec | epochs (best) | s/epoch | paper | ours / paper |"
    )
    lines = [
        head,
        "|---|---|---|" + "---:|" * len(METRICS) + "---:|---|---:|---:|---:|",
    ]
    against = baselines(rows)
    for row in rows:
        if only is not None and row.model != only:
            continue
        cells = [
            f"**{row.paper_model}**" if row.headline else row.paper_model,
            describe_setting(row.setting) + row.marks,
            _slash(r["seed"] for r in row.records),
        ]
        cells += [fmt_mean_std(*row.mean_std(m)) for m in METRICS]
        baseline = against.get(row.protocol)
        if baseline is row:
            cells.append("(baseline)")
        else:
            p = None
            if baseline is not None:
                p = welch_p(row.values("ndcg@20"), baseline.values("ndcg@20"))
            cells.append("" if p is None else f"{p:.2g}")
        cells.append(
            f"{_slash(epochs_run(r) for r in row.records)} "
            f"({_slash(r.get('best_epoch') for r in row.records)})"
        )
        cells.append(fmt(row.seconds_per_epoch(), 1))
        source = paper_figure(papers, dataset, row.paper_model)
        metric = compared_metric(source) if source else None
        if metric:
            ours, _ = row.mean_std(metric)
            paper = source["metrics"][metric]
            label = metric.replace("ndcg", "NDCG")
            cells.append(f"{fmt(paper)} ({label})")
            cells.append(f"{ours / paper:.2f}x" if ours is not None else "")
        else:
            cells += ["", ""]
        lines.append(table_row(cells))
    lines += [
        "",
        "Mean ± sample standard deviation over the seeds listed (one seed: the value). "
        "Bold: the model's headline row (its defaults, else its setting with the most "
        "seeds), as in the figures. p vs SASRec: two-sided Welch t-test "
        "of the test NDCG@20 over seeds against a SASRec row (marked baseline): a "
        "paper preset's runs against SASRec's preset runs (as each paper compares, "
        "whatever loss the model trains with), other runs against SASRec's defaults "
        "or preset of the same loss_type; blank below two seeds on either side. "
        "A preset is a config file of a paper's setting (recbole_ssl/properties/presets/). "
        "Epochs: per seed, trained (best). s/epoch: mean "
        "training seconds of the recorded epochs of the runs on a CPU, blank where "
        "none were timed "
        "(machines and loads differ between runs: see the results page's Runs; the "
        "speed benchmarks compare models in one run). Paper: the first full-ranking "
        "figure of the model in "
        "[`papers.yaml`]("
        + _link(PAPERS_FILE, page_dir)
        + "), NDCG@20 where the paper gives it, "
        "else NDCG@10. † a run was cut off or stopped by hand (its best checkpoint "
        "tested). ‡ made before run records existed: its figures are transcribed from "
        "its log, without per-epoch times.",
    ]
    return "\n".join(lines)


# the paper that proposes each model: its own table is the claim the verdict tests
OWN_PAPER = {
    "CoSeRec": "CoSeRec paper",
    "ICLRec": "ICLRec paper",
    "S3Rec": "S3-Rec paper",
    "DSSRec": "DSSRec paper",
    "MMInfoRec": "MMInfoRec paper",
}
CLAIM_METRICS = ("ndcg@20", "ndcg@10", "ndcg@5")
# the protocols a claim is tested under: the paper presets, the plugin's CE defaults
PROTOCOLS = ("preset", "CE")
SIGNIFICANCE = 0.05


def claimed_gains(papers, dataset, model):
    """``[(source, protocol, metric, gain)]``: for each source that prints ``model``
    and SASRec in the same table and protocol, the model's relative gain over SASRec
    there on the first of :data:`CLAIM_METRICS` both have. The model's own paper
    first (the claim a verdict tests), then the others in ``papers.yaml``'s order."""
    entries = papers.get(dataset) or {}
    sasrec = {
        (s["source"], s.get("protocol")): s["metrics"]
        for s in entries.get("SASRec") or []
    }
    gains = []
    for source in entries.get(model) or []:
        base = sasrec.get((source["source"], source.get("protocol")))
        if not base:
            continue
        for metric in CLAIM_METRICS:
            if metric in source["metrics"] and metric in base:
                gain = source["metrics"][metric] / base[metric] - 1
                gains.append((source["source"], source.get("protocol"), metric, gain))
                break
    own = OWN_PAPER.get(model)
    gains.sort(key=lambda g: not (own and g[0].startswith(own)))
    return gains


def tested_claim(gains):
    """``(metric, claimed gain)`` a verdict tests, from :func:`claimed_gains`: the
    first claim's (the model's own paper first), else NDCG@20 and no claimed gain."""
    if not gains:
        return "ndcg@20", None
    _, _, metric, gain = gains[0]
    return metric, gain


def verdict(row, baseline, claimed, metric):
    """``(gain, p, word)`` of ``row`` against ``baseline`` on test ``metric``.

    yes: ahead with p < 0.05 by at least half the paper's claimed gain; partly: ahead
    with p < 0.05 by less; no (tie): p >= 0.05; no (behind): behind with p < 0.05;
    not run / too few seeds: no row, or under two seeds on either side.
    """
    if row is None or baseline is None:
        return None, None, "not run"
    ours, _ = row.mean_std(metric)
    base, _ = baseline.mean_std(metric)
    if ours is None or not base:
        return None, None, "not run"
    gain = ours / base - 1
    p = welch_p(row.values(metric), baseline.values(metric))
    if p is None:
        return gain, None, "too few seeds"
    if p >= SIGNIFICANCE:
        return gain, p, "no (tie)"
    if gain < 0:
        return gain, p, "no (behind)"
    if claimed is not None and claimed > 0 and gain < claimed / 2:
        return gain, p, "partly"
    return gain, p, "yes"


def _pct(value):
    return "" if value is None else f"{value * 100:+.1f}%"


def protocol_rows(rows):
    """``{(paper_model, protocol): row}`` of the rows a verdict reads: protocol
    ``preset``, the runs of the model's own paper preset (``<Model>-paper``, nothing
    else changed); protocol ``CE``, its headline row under the plugin's CE."""
    chosen = {}
    for row in rows:
        if row.setting == {"preset": f"{row.model}-paper"}:
            chosen[(row.paper_model, "preset")] = row
        elif row.headline and row.loss_type == "CE":
            chosen.setdefault((row.paper_model, "CE"), row)
    return chosen


def claim_verdicts(chosen, model, gains):
    """``(metric, {protocol: (gain, p, word)})``: :func:`verdict` of ``model``'s row
    against SASRec's under each protocol (``chosen``: :func:`protocol_rows`), on the
    claim of :func:`tested_claim` (``gains``: :func:`claimed_gains`)."""
    metric, claimed = tested_claim(gains)
    return metric, {
        protocol: verdict(
            chosen.get((model, protocol)),
            chosen.get(("SASRec", protocol)),
            claimed,
            metric,
        )
        for protocol in PROTOCOLS
    }


def claims_section(rows, papers, dataset):
    """Each paper's claimed gain over SASRec next to ours, under each paper's preset
    and the plugin's CE, with a verdict per protocol."""
    chosen = protocol_rows(rows)
    models = [m for m in MODEL_ORDER if m != "SASRec"]  # variants make no claims
    notes = paper_notes(papers, dataset, page_models(rows, papers, dataset))
    lines = [
        "| model | paper's claim over SASRec | metric | paper preset: gain, p | "
        "holds (preset) | CE (defaults): gain, p | holds (CE) |",
        "|---|---|---|---:|---|---:|---|",
    ]
    words = {p: {} for p in PROTOCOLS}  # protocol -> {model: verdict}
    for model in models:
        gains = claimed_gains(papers, dataset, model)
        if not gains and not any((model, p) in chosen for p in PROTOCOLS):
            continue
        metric, verdicts = claim_verdicts(chosen, model, gains)
        cells = [
            model,
            "; ".join(
                f"{_pct(g)} ({src}{'' if proto == 'full' else ', ' + proto}"
                + (
                    f", note {notes[(model, src, proto)][0]}"
                    if (model, src, proto) in notes
                    else ""
                )
                + ")"
                for src, proto, _, g in gains
            )
            or "none printed",
            metric.replace("ndcg", "NDCG"),
        ]
        for protocol in PROTOCOLS:
            gain, p, word = verdicts[protocol]
            detail = _pct(gain)
            if p is not None:
                detail += f", p={p:.2g}"
            cells += [detail, word]
            words[protocol][model] = word
        lines.append(table_row(cells))
    lines += [
        "",
        claims_summary(words),
        "",
        "The claim: the model's gain over SASRec in the same table of a paper (the "
        "model's own paper first; its protocol where it is not full ranking), on "
        "NDCG@20 where both figures are printed, else NDCG@10, else NDCG@5. Ours: the "
        "mean test figure on that metric over seeds, against SASRec trained the same "
        "way: the runs of the model's paper preset (`<Model>-paper`, nothing else "
        "changed: the papers' BCE with one sampled negative, DSSRec's and MMInfoRec's "
        "own losses) against SASRec's preset (BCE); under CE the model's headline row "
        "against SASRec's. p: two-sided Welch t-test over seeds. Verdict: **yes**, "
        f"ahead with p < {SIGNIFICANCE} by at least half the claimed gain; **partly**, "
        f"ahead with p < {SIGNIFICANCE} by less; **no (tie)**, p >= {SIGNIFICANCE}; "
        "**no (behind)**; **too few seeds**, under two on either side; **not run**. "
        "Note n: the source's note under Published figures, which a reader of the "
        "comparison must know.",
    ]
    return "\n".join(lines)


def claims_summary(words):
    """The verdict table in words, one sentence per protocol, so that no sentence
    about it is typed by hand: ``words`` is ``{protocol: {model: verdict}}``."""
    names = {"preset": "Under each paper's preset", "CE": "Under the plugin's CE"}
    sentences = []
    for protocol in PROTOCOLS:
        by_word = {}
        for model, word in words.get(protocol, {}).items():
            by_word.setdefault(word, []).append(model)
        if not by_word:
            continue
        parts = []
        for word, one, many in (
            ("yes", "the claimed gain holds for {}", None),
            ("partly", "a smaller gain than claimed holds for {}", None),
            ("no (tie)", "{} ties SASRec", "{} tie SASRec"),
            ("no (behind)", "{} falls behind SASRec", "{} fall behind SASRec"),
            ("too few seeds", "{} has too few seeds to decide", "{} have too few "
             "seeds to decide"),
            ("not run", "{} is not run", "{} are not run"),
        ):  # fmt: skip
            models = by_word.get(word)
            if not models:
                continue
            if len(models) == 1:
                parts.append(one.format(models[0]))
            else:
                joined = ", ".join(models[:-1]) + " and " + models[-1]
                parts.append((many or one).format(joined))
        sentences.append(f"{names[protocol]}, {'; '.join(parts)}.")
    return " ".join(sentences)


# ---------------------------------------------------------------- variants

VARIANT_METRIC = "ndcg@20"


def variant_references(row, rows):
    """The rows a variant is measured against: its model's defaults (for a variant
    of a paper preset, that preset's own row) and, where another variant's setting
    is contained in its own, the closest such (ICLRec's one layer with the authors'
    augmentation ratios against those ratios with the default two). Empty for the
    defaults and presets themselves."""
    base = {"preset": row.setting["preset"]} if "preset" in row.setting else {}
    if row.setting == base:
        return []
    same = [o for o in rows if o.model == row.model and o is not row]
    references = [o for o in same if o.setting == base]

    def holds(setting, part):
        return all(k in setting and setting[k] == v for k, v in part.items())

    parents = [
        o
        for o in same
        if o.setting != base
        and holds(o.setting, base)
        and len(o.setting) < len(row.setting)
        and holds(row.setting, o.setting)
    ]
    if parents:
        references.append(max(parents, key=lambda o: (len(o.setting), len(o.records))))
    return references


def variant_verdict(row, reference, metric=VARIANT_METRIC):
    """``(difference, p, word)`` of a variant against its reference on ``metric``:
    ahead or behind with p < 0.05, a tie with p >= 0.05, untested below two seeds
    on either side (or with no spread at all)."""
    mine, theirs = row.values(metric), reference.values(metric)
    if not mine or not theirs:
        return None, None, "untested (no figure)"
    mean, reference_mean = row.mean_std(metric)[0], reference.mean_std(metric)[0]
    difference = mean / reference_mean - 1 if reference_mean else None
    p = welch_p(mine, theirs)
    if p is None:
        few = min(len(mine), len(theirs)) < 2
        return (
            difference,
            None,
            "untested (one seed)" if few else "untested (no spread)",
        )
    if p >= SIGNIFICANCE:
        return difference, p, "tie"
    return difference, p, "ahead" if difference > 0 else "behind"


def variants_section(rows):
    """Every variant row against the rows :func:`variant_references` names, so that
    what the findings say about a variant is a tested figure, not a reading of one
    seed."""
    label = VARIANT_METRIC.replace("ndcg", "NDCG")
    lines = [
        f"| model | setting | against | seeds | {label} | against's | difference "
        "| p | verdict |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        for reference in variant_references(row, rows):
            difference, p, word = variant_verdict(row, reference)
            against = describe_setting(reference.setting)
            if reference.paper_model != row.paper_model:
                against = f"{reference.paper_model} {against}"
            lines.append(
                table_row(
                    [
                        row.paper_model,
                        describe_setting(row.setting) + row.marks,
                        against,
                        f"{len(row.values(VARIANT_METRIC))} / "
                        f"{len(reference.values(VARIANT_METRIC))}",
                        fmt(row.mean_std(VARIANT_METRIC)[0]),
                        fmt(reference.mean_std(VARIANT_METRIC)[0]),
                        "" if difference is None else _pct(difference),
                        "" if p is None else f"{p:.2g}",
                        word,
                    ]
                )
            )
    lines += [
        "",
        f"Each row of the results table that changes keys of its model's defaults (or "
        f"of a paper preset) against the defaults' row (or the preset's own row) and, "
        f"where another row's changes are a part of its own, against the closest such "
        f"row, on the mean test {label} over seeds. Seeds: the variant's / the "
        f"reference's. "
        f"p: two-sided Welch t-test. Verdict: ahead or behind with p < "
        f"{SIGNIFICANCE}, tie with p >= {SIGNIFICANCE}, untested below two seeds on "
        f"either side. Marks as in the results table.",
    ]
    return "\n".join(lines)


def _compared_setting(record):
    """Whether a record's setting is one the groups compare: the model's defaults
    (CE) or its own paper preset, nothing else changed."""
    setting = json.loads(setting_key(record))
    return setting in ({}, {"preset": f"{record['model']}-paper"})


def group_evaluations(records):
    """``(bounds, series)`` of the records with metrics by user group: evaluation
    records (``python -m recbole_ssl.groups``) and training runs, which record them
    for their tested model (``eval_groups``), of a model's defaults or its paper
    preset. ``bounds``: the ``(min, max)`` training length of each group; ``series``:
    ``{(model, protocol): [NDCG@20 per group, one list per checkpoint]}``, protocol
    the loss_type of a model's defaults or ``paper preset`` (compared with SASRec's
    preset whatever the model's own loss, as the claims are). The newest
    record of each checkpoint counts (a training run and an evaluation of its best
    checkpoint are one); records with another number of groups than the most common
    are left out. ``(None, {})`` without any."""
    latest = OrderedDict()
    for record in sorted(records, key=lambda r: r.get("start_time") or ""):
        if (
            record.get("kind") in ("train", "evaluate")
            and (record.get("groups") or {}).get("groups")
            and not record.get("superseded_by")
            and _compared_setting(record)
        ):
            latest[record.get("checkpoint") or record["_path"]] = record
    if not latest:
        return None, OrderedDict()
    sizes = [len(r["groups"]["groups"]) for r in latest.values()]
    size = max(set(sizes), key=sizes.count)
    bounds, series = None, OrderedDict()
    ordered = sorted(
        latest.values(), key=lambda r: (_model_rank(r["model"]), r["seed"])
    )
    for record in ordered:
        groups = record["groups"]["groups"]
        if len(groups) != size:
            continue
        bounds = bounds or [(g["min_length"], g["max_length"]) for g in groups]
        loss = (record.get("config") or {}).get("loss_type") or "CE"
        if json.loads(setting_key(record)):  # its paper preset, as in the claims
            loss = "paper preset"
        values = [g["metrics"]["ndcg@20"] for g in groups]
        series.setdefault((record["model"], loss), []).append(values)
    return bounds, series


def _mean(values):
    return sum(values) / len(values)


def groups_section(records):
    bounds, series = group_evaluations(records)
    if not series:
        return (
            "No metrics by user group yet: every single-process training run records "
            "them (`eval_groups`), and `python -m recbole_ssl.groups <checkpoint> ...` "
            "writes one record per checkpoint."
        )
    labels = [f"{low}-{high}" for low, high in bounds]
    lines = [
        "| model | protocol | checkpoints | "
        + " | ".join(f"group {i + 1} ({label})" for i, label in enumerate(labels))
        + " |",
        "|---|---|---:|" + "---:|" * len(labels),
    ]
    for (model, loss), runs in series.items():
        means = [_mean(column) for column in zip(*runs, strict=True)]
        base = series.get(("SASRec", loss))
        cells = [model, loss, len(runs)]
        for i, mean in enumerate(means):
            cell = fmt(mean)
            if base and model != "SASRec":
                ref = _mean([run[i] for run in base])
                cell += f" ({mean / ref - 1:+.0%})" if ref else ""
            cells.append(cell)
        lines.append(table_row(cells))
    lines += [
        "",
        "Test users split by the length of their training sequence into groups of "
        "equal size (shortest first; the range of lengths in brackets), each group's "
        "test NDCG@20 averaged over the checkpoints (seeds) evaluated; in brackets the "
        "change against SASRec of the same protocol (the paper presets: each "
        "paper's own setting, against SASRec's preset). ICLRec's Figure 3 reports "
        "its gain over SASRec and CL4SRec as largest for the shortest sequences.",
    ]
    return "\n".join(lines)


def _link(path, page_dir):
    return os.path.relpath(path, page_dir).replace(os.sep, "/")


def papers_section(papers, dataset, models):
    """The full-ranking figures of ``models`` in ``papers.yaml``, and every note of
    their sources (numbered as :func:`paper_notes`; a note of a figure of another
    protocol says so, since the table leaves that figure out)."""
    lines = [
        "| model | source | protocol | "
        + " | ".join(m.replace("hit", "HR").replace("ndcg", "NDCG") for m in METRICS)
        + " |",
        "|---|---|---|" + "---:|" * len(METRICS),
    ]
    notes = paper_notes(papers, dataset, models)
    for model in sorted(models, key=_model_rank):
        for source in (papers.get(dataset) or {}).get(model) or []:
            if source.get("protocol") != "full":
                continue
            metrics = source["metrics"]
            cells = [model, source["source"], source["protocol"]]
            key = (model, source["source"], source["protocol"])
            if key in notes:
                cells[1] += f" ({notes[key][0]})"
            cells += [fmt(metrics.get(m)) for m in METRICS]
            lines.append(table_row(cells))
    if notes:
        lines += ["", "Notes (from `papers.yaml`):", ""]
        for (model, source, protocol), (number, note) in notes.items():
            where = "" if protocol == "full" else f" ({protocol}, not in the table)"
            lines.append(f"{number}. {model}, {source}{where}: {note}")
    return "\n".join(lines)


def paper_notes(papers, dataset, models):
    """``{(model, source, protocol): (n, note)}``: every source of ``models`` in
    ``papers.yaml`` that carries a note, numbered from 1 in the order of the Published
    figures table (models in :data:`MODEL_ORDER`, sources in the file's order), which
    lists them; the claims table refers to them by number."""
    notes = {}
    for model in sorted(models, key=_model_rank):
        for source in (papers.get(dataset) or {}).get(model) or []:
            if source.get("note"):
                key = (model, source["source"], source.get("protocol"))
                notes[key] = (len(notes) + 1, source["note"])
    return notes


def page_models(rows, papers, dataset):
    """The models whose published figures a page shows: those it has runs of, those
    whose claims the claims table tests, and SASRec, every claim's baseline."""
    models = {r.paper_model for r in rows}
    claims = {m for m in MODEL_ORDER if claimed_gains(papers, dataset, m)}
    return models | claims | ({"SASRec"} if claims else set())


def runs_section(records, page_dir):
    lines = [
        "| record | model | setting | seed | status | epochs (best) | wall | machine "
        "| commit | date | command | notes |",
        "|---|---|---|---:|---|---|---:|---|---|---|---|---|",
    ]
    order = sorted(
        records,
        key=lambda r: (_model_rank(r["model"]), setting_key(r), r["seed"], r["_path"]),
    )
    for r in order:
        link = _link(r["_path"], page_dir)
        name = os.path.basename(r["_path"])
        machine = r.get("machine") or {}
        threads = machine.get("threads")
        machine_text = ", ".join(
            str(x)
            for x in (
                machine.get("cpu"),
                f"{machine.get('cores')} cores" if machine.get("cores") else None,
                f"{threads} threads" if threads else None,
                machine.get("gpu"),
            )
            if x
        )
        wall = r.get("wall_seconds")
        commit = (r.get("git") or {}).get("commit")
        dirty = (r.get("git") or {}).get("dirty")
        status = r["status"] + (" (transcribed)" if r.get("transcribed") else "")
        if r.get("superseded_by"):
            status += f", superseded by {r['superseded_by']}"
        if r.get("kind") == "evaluate":
            status = f"evaluation ({status})"
        if r.get("tested") == "last":
            status += ", last epoch tested"
        resumes = len(r.get("resumes") or [])
        if resumes:
            status += f", resumed {resumes}x"
        if r.get("error"):
            status += f": {r['error']}"
        cells = [
            f"[{name}]({link})",
            r["model"],
            describe_setting(json.loads(setting_key(r))),
            str(r["seed"]),
            status,
            f"{epochs_run(r) or ''} ({'' if r.get('best_epoch') is None else r['best_epoch']})",
            (
                ""
                if wall is None
                else f"{wall / 60:.0f} min" + (" (last process)" if resumes else "")
            ),
            machine_text,
            "" if not commit else f"`{commit[:7]}`" + (" (modified)" if dirty else ""),
            (r.get("start_time") or "")[:10],
            f"`{r['command']}`" if r.get("command") else "",
            " ".join(str(r.get("notes") or "").split()),
        ]
        lines.append(table_row(cells))
    return "\n".join(lines)


def figures_section(figures, page_dir):
    lines = []
    for path, caption in figures.values():
        link = _link(path, page_dir)
        lines.append(f"![{caption}]({link})")
        lines.append("")
        lines.append(f"*{caption}*")
        lines.append("")
    return "\n".join(lines).rstrip()


def _uses_attributes(model):
    """Whether ``model``'s YAML reads item attributes (``item_attribute``)."""
    from recbole_ssl.model_pages import MODEL_DIR, yaml_entries

    path = MODEL_DIR / f"{model}.yaml"
    return path.is_file() and "item_attribute" in yaml_entries(path)


def _seeds_value(row, metric="ndcg@20"):
    if row is None:
        return "not run"
    return f"{fmt_mean_std(*row.mean_std(metric))} ({len(row.records)})"


def relative_cost(chosen, model):
    """``model``'s mean training seconds per epoch over SASRec's, from the first
    protocol (CE, then the paper presets) whose rows of both have timed epochs, with
    that protocol named; '' where none has."""
    for protocol in PROTOCOLS[::-1]:
        row, base = chosen.get((model, protocol)), chosen.get(("SASRec", protocol))
        seconds = row.seconds_per_epoch() if row else None
        base_seconds = base.seconds_per_epoch() if base else None
        if seconds and base_seconds:
            return f"{seconds / base_seconds:.2f}x ({protocol})"
    return ""


def models_section(rows, papers, dataset, figures, readme_dir, page_path, docs_dir):
    """The README's "which model" block for ``dataset``: per model, whether it reads
    item attributes, its cost per epoch against SASRec, test NDCG@20 under the
    plugin's CE and under its paper preset, and whether the paper's claim holds."""
    chosen = protocol_rows(rows)
    path, caption = figures["test"]
    words = {p: {} for p in PROTOCOLS}  # protocol -> {model: verdict}
    lines = [f"![{caption}]({_link(path, readme_dir)})", ""]
    lines += [
        "| model | item attributes | s/epoch vs SASRec | NDCG@20, CE (seeds) | "
        "NDCG@20, paper preset (seeds) | paper's gain over SASRec holds: preset / CE |",
        "|---|---|---:|---:|---:|---|",
    ]
    for model in MODEL_ORDER:
        ce, preset = chosen.get((model, "CE")), chosen.get((model, "preset"))
        if ce is None and preset is None:
            continue
        page = os.path.join(docs_dir, f"{model}.md")
        name = (
            f"[{model}]({_link(page, readme_dir)})" if os.path.isfile(page) else model
        )
        cost = relative_cost(chosen, model)
        holds = "(baseline)"
        if model != "SASRec":
            _, verdicts = claim_verdicts(
                chosen, model, claimed_gains(papers, dataset, model)
            )
            for p in PROTOCOLS:
                words[p][model] = verdicts[p][2]
            holds = " / ".join(verdicts[p][2] for p in PROTOCOLS)
        cells = [
            name,
            "optional" if _uses_attributes(model) else "no",
            cost,
            _seeds_value(ce),
            _seeds_value(preset),
            holds,
        ]
        lines.append(table_row(cells))
    page = _link(page_path, readme_dir)
    lines += [
        "",
        "Test NDCG@20 on this benchmark, mean ± std over seeds (their number in "
        "brackets), full ranking over all items. CE: the model's defaults with the "
        "plugin's all-item cross-entropy; paper preset: the paper's own setting "
        "(SASRec, CL4SRec, CoSeRec, ICLRec and S3-Rec with BCE and one sampled "
        "negative). s/epoch: mean training seconds per epoch of the model's runs over "
        "SASRec's under the same protocol (CE where both were timed, else the "
        "presets; runs on a 2-core CPU, often two side by side, so a rough guide, "
        "and runs on a GPU left out; "
        "the speed benchmarks are in [docs/speed.md](docs/speed.md)). Holds: the "
        "paper's claimed gain over SASRec tested with a Welch t-test over seeds (yes, "
        "partly, no, too few seeds, not run; the rule and every setting, seed and "
        f"command: [`{page}`]({page})).",
        "",
        claims_summary(words),
    ]
    return "\n".join(lines)


def model_results_section(rows, papers, dataset, model, page_dir):
    """A model page's table for ``dataset``: the results table's rows of ``model``
    (its variants included), tested against the SASRec rows as there."""
    return results_section(rows, papers, dataset, page_dir, only=model)


# ---------------------------------------------------------------- figures


def _curve(record):
    return [
        (e["epoch"], e["valid"]["ndcg@20"])
        for e in final_stage_epochs(record)
        if (e.get("valid") or {}).get("ndcg@20") is not None
    ]


def _band(curves):
    """Per epoch: mean, low and high over the seeds that reached it."""
    by_epoch = OrderedDict()
    for curve in curves:
        for epoch, value in curve:
            by_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(by_epoch)
    mean = [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]
    low = [min(by_epoch[e]) for e in epochs]
    high = [max(by_epoch[e]) for e in epochs]
    return epochs, mean, low, high


def figure_data(rows, papers, dataset, records=()):
    """What each figure shows, as plain data (its digest decides staleness).

    The per-setting panels also show training runs without test figures (stopped
    before their end), marked as such."""
    curves = OrderedDict()
    for row in rows:
        if row.headline:
            series = [c for c in (_curve(r) for r in row.records) if c]
            if series:
                curves[row.paper_model] = series
    groups = OrderedDict()
    for record in sorted(
        records, key=lambda r: (_model_rank(r["model"]), setting_key(r) != "{}")
    ):
        if record.get("kind") != "train" or record.get("superseded_by"):
            continue
        if _curve(record):
            groups.setdefault((record["model"], setting_key(record)), []).append(record)
    panels = OrderedDict()
    for (model, key), group in groups.items():
        label = describe_setting(json.loads(key))
        if not any(r.get("test") for r in group):
            label += ", stopped"
        panels.setdefault(model, OrderedDict())[label] = [_curve(r) for r in group]
    test = OrderedDict()
    for row in rows:
        if not row.headline:
            continue
        entry = {}
        for metric in ("ndcg@20", "ndcg@10"):
            source = paper_figure(papers, dataset, row.paper_model)
            entry[metric] = {
                "seeds": row.values(metric),
                "paper": (source or {}).get("metrics", {}).get(metric),
            }
        test[row.paper_model] = entry
    bounds, series = group_evaluations(records)
    groups = OrderedDict()
    if series:
        groups["bounds"] = bounds
        groups["series"] = OrderedDict(
            (f"{model} ({loss})", runs) for (model, loss), runs in series.items()
        )
    return {
        "version": FIGURE_VERSION,
        "dataset": dataset,
        "curves": curves,
        "panels": panels,
        "test": test,
        "groups": groups,
    }


def digest(data):
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, data_digest):
    """Lay out, write the PNG with its data digest, and close the figure."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(
        buffer,
        format="png",
        dpi=110,
        metadata={"Source": f"recbole-ssl {data_digest}"},
    )
    write_atomic(path, buffer.getvalue(), mode="wb")
    _pyplot().close(fig)


def _plot_band(ax, series, label):
    """The mean over seeds per epoch, with the min-max band where seeds differ."""
    epochs, mean, low, high = _band(series)
    (line,) = ax.plot(epochs, mean, label=label)
    if len(series) > 1:
        ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2)


def draw_curves(data, path, data_digest):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for label, series in data["curves"].items():
        seeds = f"{len(series)} seed" + ("s" if len(series) > 1 else "")
        _plot_band(ax, series, f"{label} ({seeds})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NDCG@20")
    ax.set_title(f"{data['dataset']}: validation NDCG@20 per model (band: seeds)")
    ax.grid(alpha=0.3)
    if data["curves"]:
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.text(
            0.5, 0.5, "no validation curves yet", ha="center", transform=ax.transAxes
        )
    _save(fig, path, data_digest)


def draw_panels(data, path, data_digest):
    plt = _pyplot()
    models = list(data["panels"])
    cols = 2
    rows = max(1, math.ceil(len(models) / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(11, 3.4 * rows), squeeze=False, sharey=True
    )
    for ax, model in zip(axes.flat, models, strict=False):
        for setting, series in data["panels"][model].items():
            label = setting if len(setting) < 60 else setting[:57] + "..."
            _plot_band(ax, series, f"{label} ({len(series)})")
        ax.set_title(model)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation NDCG@20")
    for ax in list(axes.flat)[len(models) :]:
        ax.axis("off")
    fig.suptitle(f"{data['dataset']}: validation NDCG@20 per setting (seeds)")
    _save(fig, path, data_digest)


def draw_test(data, path, data_digest):
    plt = _pyplot()
    labels = list(data["test"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric in zip(axes, ("ndcg@20", "ndcg@10"), strict=True):
        for x, label in enumerate(labels):
            entry = data["test"][label][metric]
            seeds = entry["seeds"]
            if seeds:
                ax.scatter([x] * len(seeds), seeds, color="C0", s=18, zorder=3)
                mean = sum(seeds) / len(seeds)
                ax.plot([x - 0.3, x + 0.3], [mean, mean], color="C0", lw=2)
            if entry["paper"] is not None:
                ax.scatter(
                    [x], [entry["paper"]], marker="D", color="C3", s=30, zorder=3
                )
        ax.scatter([], [], color="C0", s=18, label="ours, one dot per seed (bar: mean)")
        ax.scatter([], [], marker="D", color="C3", s=30, label="the paper's figure")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right")
        ax.set_ylabel(f"test {metric.replace('ndcg', 'NDCG')}")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(
        f"{data['dataset']}: test NDCG per model (defaults) against the papers"
    )
    _save(fig, path, data_digest)


def draw_groups(data, path, data_digest):
    plt = _pyplot()
    groups = data["groups"]
    labels = [f"{low}-{high}" for low, high in groups["bounds"]]
    fig, ax = plt.subplots(figsize=(8, 4.6))
    colors = {}
    for name, runs in groups["series"].items():
        model, loss = name.rsplit(" (", 1)
        color = colors.setdefault(model, f"C{len(colors)}")
        style = "-" if loss.startswith("paper preset") else "--"
        means = [_mean(column) for column in zip(*runs, strict=True)]
        ax.plot(
            range(len(labels)),
            means,
            style,
            marker="o",
            color=color,
            label=f"{name}, {len(runs)} seed" + ("s" if len(runs) > 1 else ""),
        )
        if len(runs) > 1:
            lows = [min(column) for column in zip(*runs, strict=True)]
            highs = [max(column) for column in zip(*runs, strict=True)]
            ax.fill_between(range(len(labels)), lows, highs, color=color, alpha=0.12)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([f"{label} items" for label in labels])
    ax.set_xlabel("training sequence length of the test users (groups of equal size)")
    ax.set_ylabel("test NDCG@20")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(
        f"{data['dataset']}: test NDCG@20 by user group "
        "(solid paper presets, dashed defaults)"
    )
    _save(fig, path, data_digest)


FIGURES = OrderedDict(
    [
        ("test", ("test-ndcg", draw_test, "test NDCG@20 and NDCG@10 per model")),
        ("curves", ("valid-curves", draw_curves, "validation NDCG@20 per epoch")),
        ("panels", ("valid-curves-settings", draw_panels, "every setting's curve")),
        ("groups", ("groups", draw_groups, "test NDCG@20 by user group")),
    ]
)
OPTIONAL_FIGURES = ("groups",)  # drawn only once a record has their data


def figure_paths(dataset, figures_dir):
    return OrderedDict(
        (
            name,
            (
                os.path.join(figures_dir, f"{dataset}-{stem}.png"),
                f"{dataset}: {caption}",
            ),
        )
        for name, (stem, _, caption) in FIGURES.items()
    )


def png_digest(path):
    """The digest a figure of this tool carries, or None."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            source = image.text.get("Source", "")
    except (OSError, ValueError):
        return None
    return source.split(" ", 1)[1] if source.startswith("recbole-ssl ") else None


# ---------------------------------------------------------------- pages


def check_markers(text, path):
    """Every section's begin marker has one end marker after it, and no section twice;
    otherwise re-rendering could swallow the prose between two sections."""
    begins = re.findall(r"<!-- report:begin (\S+) -->", text)
    ends = re.findall(r"<!-- report:end (\S+) -->", text)
    for name in sorted(set(begins) | set(ends)):
        if begins.count(name) != 1 or ends.count(name) != 1:
            raise ReportError(
                f"{path}: section {name!r} needs exactly one "
                f"'{BEGIN.format(name)}' and one '{END.format(name)}' "
                f"(found {begins.count(name)} and {ends.count(name)})"
            )
        if text.index(BEGIN.format(name)) > text.index(END.format(name)):
            raise ReportError(f"{path}: section {name!r} ends before it begins")


def replace_sections(text, sections, path, append_missing=True):
    """``text`` with each named section's content replaced; missing ones appended
    (under a heading) when ``append_missing``."""
    check_markers(text, path)
    for name, content in sections.items():
        begin, end = BEGIN.format(name), END.format(name)
        block = f"{begin}\n{content}\n{end}"
        if begin in text:
            start, stop = text.index(begin), text.index(end) + len(end)
            text = text[:start] + block + text[stop:]
        elif append_missing:
            heading = SECTION_TITLES.get(name, name)
            text = text.rstrip("\n") + f"\n\n## {heading}\n\n{block}\n"
    return text


def render(
    dataset,
    records_dir,
    results_dir,
    readme=None,
    papers=None,
    records=None,
    docs_dir=None,
):
    """Everything the records give for ``dataset``: ``(pages, figures)``, where pages
    maps a path to its new text and figures a path to ``(drawer, data, digest)``."""
    papers = load_papers() if papers is None else papers
    if records is None:
        records = load_records(records_dir, dataset)
    if not records:
        raise ReportError(f"no run records of {dataset!r} in {records_dir}/{dataset}")
    rows = build_rows(records)
    page_path = os.path.join(results_dir, f"{dataset}.md")
    page_dir = os.path.dirname(os.path.abspath(page_path))
    figures_dir = os.path.join(results_dir, "figures")
    paths = figure_paths(dataset, figures_dir)
    data = figure_data(rows, papers, dataset, records)
    for name in OPTIONAL_FIGURES:
        if not data[name]:
            del paths[name]
    figures = OrderedDict()
    for name, (_, drawer, _) in FIGURES.items():
        if name not in paths:
            continue
        part = {"version": data["version"], "dataset": dataset, name: data[name]}
        figures[paths[name][0]] = (drawer, part, digest(part))
    abs_paths = OrderedDict((k, (os.path.abspath(p), c)) for k, (p, c) in paths.items())
    old = (
        Path(page_path).read_text(encoding="utf-8") if os.path.isfile(page_path) else ""
    )
    sections = OrderedDict(
        [
            ("results", results_section(rows, papers, dataset, page_dir)),
            ("claims", claims_section(rows, papers, dataset)),
            (
                "papers",
                papers_section(papers, dataset, page_models(rows, papers, dataset)),
            ),
            ("figures", figures_section(abs_paths, page_dir)),
            ("runs", runs_section(records, page_dir)),
        ]
    )
    if data["groups"] or BEGIN.format("groups") in old:
        sections["groups"] = groups_section(records)
    if (
        any(variant_references(r, rows) for r in rows)
        or BEGIN.format("variants") in old
    ):
        sections["variants"] = variants_section(rows)
    if not old:
        old = f"# Results on {dataset}\n"
    pages = OrderedDict([(page_path, replace_sections(old, sections, page_path))])
    if readme and os.path.isfile(readme):
        readme_dir = os.path.dirname(os.path.abspath(readme))
        text = Path(readme).read_text(encoding="utf-8")
        name = f"{dataset}:models"
        if BEGIN.format(name) in text:
            block = models_section(
                rows,
                papers,
                dataset,
                abs_paths,
                readme_dir,
                os.path.abspath(page_path),
                os.path.abspath(docs_dir or "docs/models"),
            )
            pages[readme] = replace_sections(
                text, {name: block}, readme, append_missing=False
            )
    for model, path in model_pages(docs_dir).items() if docs_dir else ():
        text = Path(path).read_text(encoding="utf-8")
        name = f"{dataset}:results"
        if BEGIN.format(name) in text:
            block = model_results_section(
                rows, papers, dataset, model, os.path.dirname(os.path.abspath(path))
            )
            pages[path] = replace_sections(
                text, {name: block}, path, append_missing=False
            )
    return pages, figures


def model_page_sections(docs_dir):
    """``{path: text}`` of the model pages under ``docs_dir`` with their
    ``docstring`` and ``params`` sections rendered, where they have the markers
    (see :mod:`recbole_ssl.model_pages`)."""
    pages = OrderedDict()
    for model, path in model_pages(docs_dir).items():
        text = Path(path).read_text(encoding="utf-8")
        sections = {
            name: render_section(model)
            for name, render_section in (
                ("docstring", docstring_section),
                ("params", params_section),
            )
            if BEGIN.format(name) in text
        }
        if sections:
            pages[path] = replace_sections(text, sections, path, append_missing=False)
    return pages


def stale(pages, figures):
    """What differs on disk from what the records give, one line each."""
    out = []
    for path, text in pages.items():
        old = Path(path).read_text(encoding="utf-8") if os.path.isfile(path) else None
        if old is None:
            out.append(f"{path}: missing")
            continue
        if old != text:
            names = [
                m
                for m in re.findall(r"<!-- report:begin (\S+) -->", text)
                if _section(old, m) != _section(text, m)
            ]
            what = ", ".join(names) if names else "sections missing"
            out.append(f"{path}: out of date with the records ({what})")
    for path, (_, _, data_digest) in figures.items():
        found = png_digest(path) if os.path.isfile(path) else None
        if found != data_digest:
            out.append(
                f"{path}: " + ("missing" if not os.path.isfile(path) else "out of date")
            )
    return out


def _section(text, name):
    begin, end = BEGIN.format(name), END.format(name)
    start = text.find(begin)
    stop = text.find(end, start)
    return None if start < 0 or stop < 0 else text[start:stop]


def write(pages, figures):
    for path, text in pages.items():
        old = Path(path).read_text(encoding="utf-8") if os.path.isfile(path) else None
        if old != text:
            write_atomic(path, text)
            print(f"wrote {path}")
    for path, (drawer, data, data_digest) in figures.items():
        if os.path.isfile(path) and png_digest(path) == data_digest:
            continue
        drawer(data, path, data_digest)
        print(f"drew {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m recbole_ssl.report",
        description="Render results pages and figures from run records.",
    )
    parser.add_argument(
        "--dataset", action="append", help="dataset (repeatable; default: all)"
    )
    parser.add_argument("--records", default=os.path.join("results", "runs"))
    parser.add_argument("--results", default="results", help="pages and figures")
    parser.add_argument("--readme", default="README.md")
    parser.add_argument(
        "--docs",
        default=os.path.join("docs", "models"),
        help="model pages: their params and <dataset>:results sections",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if anything is out of date"
    )
    args = parser.parse_args(argv)
    try:
        if not os.path.isdir(args.records):
            raise ReportError(f"no records folder {args.records}")
        datasets = args.dataset or datasets_in(args.records)
        problems = []
        for dataset in list(datasets):
            records = load_records(args.records, dataset)
            if not records and not args.dataset:
                datasets.remove(dataset)  # only runs in progress: nothing to render
                continue
            page = os.path.join(args.results, f"{dataset}.md")
            if args.check and not args.dataset and not os.path.isfile(page):
                # e.g. a getting-started run on lastfm: records, never rendered
                sys.stderr.write(
                    f"recbole_ssl.report: {dataset}: records but no page {page}, not "
                    f"checked (render it with --dataset {dataset})\n"
                )
                datasets.remove(dataset)
                continue
            pages, figures = render(
                dataset,
                args.records,
                args.results,
                args.readme,
                records=records,
                docs_dir=args.docs,
            )
            if args.check:
                problems += stale(pages, figures)
            else:
                write(pages, figures)
        pages = model_page_sections(args.docs)
        if args.check:
            problems += stale(pages, {})
        else:
            write(pages, {})
    except (ReportError, ModelPageError) as e:
        sys.stderr.write(f"recbole_ssl.report: error: {e}\n")
        return 2
    if args.check:
        for line in problems:
            sys.stderr.write(f"recbole_ssl.report: {line}\n")
        if problems:
            sys.stderr.write(
                "recbole_ssl.report: run `python -m recbole_ssl.report` and commit\n"
            )
            return 1
        print(f"up to date: {', '.join(datasets)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
