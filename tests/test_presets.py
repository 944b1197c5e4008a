"""The papers' presets: config files whose every key is known and sourced, and whose runs
the records and the report name."""

import glob
import json
import os
import re

import pytest
import yaml

from recbole_ssl import report
from recbole_ssl.config import PROPERTIES_DIR, Config
from recbole_ssl.quick_start import run_recbole_ssl
from recbole_ssl.record import PRESETS_DIR

PRESETS = sorted(glob.glob(os.path.join(PRESETS_DIR, "*.yaml")))
MODELS = ("SASRec", "CL4SRec", "CoSeRec", "ICLRec", "S3Rec", "DSSRec", "MMInfoRec")
RECBOLE_OVERALL = os.path.join(
    os.path.dirname(__import__("recbole").__file__), "properties", "overall.yaml"
)


def keys_of(path):
    with open(path, encoding="utf-8") as f:
        return set(yaml.safe_load(f) or {})


def test_one_preset_per_model():
    names = [os.path.basename(p) for p in PRESETS]
    assert names == sorted(f"{m}-paper.yaml" for m in MODELS)


@pytest.mark.parametrize("path", PRESETS, ids=os.path.basename)
def test_every_key_is_known_sourced_and_reaches_the_config(path):
    model = os.path.basename(path).split("-")[0]
    known = (
        keys_of(PROPERTIES_DIR / "model" / f"{model}.yaml")
        | keys_of(PROPERTIES_DIR / "overall.yaml")
        | keys_of(RECBOLE_OVERALL)
    )
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if re.match(r"^[A-Za-z_]", line)]
    values = yaml.safe_load(open(path, encoding="utf-8"))
    assert len(lines) == len(values)
    for line in lines:
        key = line.split(":")[0]
        assert key in known, f"{key}: no such key for {model}"
        assert re.search(r"#\s*(paper|script|ours):", line), f"{key}: no source"
    config = Config(model, "amazon-beauty", config_file_list=[path])
    for key, value in values.items():
        assert config[key] == value, key


def test_a_preset_run_is_recorded_and_reported_by_name(tiny_config, tmp_path):
    preset = os.path.join(PRESETS_DIR, "SASRec-paper.yaml")
    run_recbole_ssl(
        "SASRec", "tiny", config_file_list=[preset], config_dict=dict(tiny_config)
    )
    (path,) = glob.glob(str(tmp_path / "results/runs/tiny/*.json"))
    record = json.loads(open(path).read())
    assert record["presets"] == ["SASRec-paper"]
    assert record["config"]["loss_type"] == "BCE"
    record["_path"] = path
    (row,) = report.build_rows([record])
    # the tiny config's keys that set the preset's otherwise
    assert report.describe_setting(row.setting) == (
        "preset SASRec-paper, epochs=1, train_batch_size=64"
    )
