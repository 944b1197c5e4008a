"""Synthetic power-law datasets: seeded, the whole catalogue in RecBole's item count,
at least three items per user, popularity that falls with rank, clear errors."""

import numpy as np
import pytest

from recbole_ssl.config import Config
from recbole_ssl.data.convert import ConvertError
from recbole_ssl.data.synthetic import generate, main, sequences
from recbole_ssl.utils import create_dataset


def test_sequences_are_seeded_long_enough_and_power_law():
    lengths, items = sequences(200, 500, 4000, alpha=1.0, seed=1)
    assert lengths.sum() == len(items) == 4000 and lengths.min() >= 3
    assert items.min() >= 1 and items.max() <= 500
    again = sequences(200, 500, 4000, alpha=1.0, seed=1)
    assert np.array_equal(again[1], items) and np.array_equal(again[0], lengths)
    assert not np.array_equal(sequences(200, 500, 4000, seed=2)[1], items)
    counts = np.sort(np.bincount(items, minlength=501)[1:])[::-1]
    # Zipf with alpha 1: the top item about 1 / H(500) = 15% of draws, the 10th 1.5%
    assert counts[0] / 4000 == pytest.approx(0.147, abs=0.03)
    assert counts[9] < counts[0] / 4


def test_recbole_loads_the_whole_catalogue(tmp_path):
    generate(tmp_path, "syn", users=30, items=400, interactions=150, seed=0)
    config = Config(
        "SASRec",
        "syn",
        config_dict={"data_path": str(tmp_path), "state": "ERROR"},
    )
    dataset = create_dataset(config)
    assert dataset.item_num == 401  # every item, drawn or not, and the padding
    assert dataset.user_num == 31 and dataset.inter_num == 150


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--users", "10", "--items", "5", "--interactions", "20"],
            "at least 3 per user",
        ),
        (["--users", "10", "--items", "1", "--interactions", "30"], "items >= 2"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, capsys, args, message):
    assert main([*args, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing written


def test_errors_raise_convert_error():
    with pytest.raises(ConvertError, match="alpha"):
        sequences(3, 10, 9, alpha=-1)
