"""RecBole's distributed mode on the CPU: two processes with gloo."""

import math

import pytest
from conftest import free_port

from recbole_ssl.quick_start import run


@pytest.mark.slow
def test_two_processes_on_cpu(tiny_config):
    result = run(
        "SASRec",
        "tiny",
        config_dict=dict(tiny_config, epochs=2),
        nproc=2,
        port=free_port(),
    )
    assert result is not None
    values = list(result["test_result"].values())
    assert len(values) == 6 and all(math.isfinite(v) for v in values)
