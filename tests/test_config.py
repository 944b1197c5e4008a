"""Config: the plugin's layers above RecBole's, and RecBole's order above that."""

import sys

import pytest
import yaml

from recbole_ssl.config import PROPERTIES_DIR, SHIPPED_DATA_DIR, Config
from recbole_ssl.quick_start import build_config
from recbole_ssl.utils import ConfigError


def test_plugin_overall_overrides_recbole_internal_files(tiny_config):
    config = Config("SASRec", "tiny", config_dict=tiny_config)
    # RecBole's overall.yaml: 2048, MRR@10, five metrics; its sequential.yaml: no history
    assert config["valid_metric"] == "NDCG@20"
    assert config["metrics"] == ["Hit", "NDCG"]
    assert config["topk"] == [5, 10, 20]
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert config["eval_args"]["order"] == "TO"
    assert config["eval_args"]["mode"] == {"valid": "full", "test": "full"}
    assert config["train_neg_sample_args"]["distribution"] == "none"
    assert config["eval_mask_history"] is True


def test_partial_eval_args_keep_the_other_default_keys(tiny_config, monkeypatch):
    given = {"mode": {"valid": "full", "test": "uni100"}}
    config = Config("SASRec", "tiny", config_dict=dict(tiny_config, eval_args=given))
    assert config["eval_args"] == {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "group_by": "user",
        "mode": {"valid": "full", "test": "uni100"},
    }
    monkeypatch.setattr(sys, "argv", ["run", "--eval_args={'mode': 'uni100'}"])
    config = Config("SASRec", "tiny", config_dict=tiny_config)
    assert config["eval_args"]["order"] == "TO"
    assert config["eval_args"]["mode"] == {"valid": "uni100", "test": "uni100"}


def test_model_yaml_overrides_plugin_overall(tiny_config):
    overall = yaml.safe_load((PROPERTIES_DIR / "overall.yaml").read_text())
    assert overall["train_mode"] == "prefix"
    assert Config("SASRec", "tiny", config_dict=tiny_config)["train_mode"] == "sequence"


def test_plugin_model_yaml_overrides_recbole_model_yaml(
    tiny_config, tmp_path, monkeypatch
):
    # RecBole's own SASRec.yaml says n_layers: 2 and so does ours; use a different one
    model_yaml = tmp_path / "SASRec.yaml"
    model_yaml.write_text("n_layers: 3\nhidden_act: relu\n")
    files = [str(PROPERTIES_DIR / "overall.yaml"), str(model_yaml)]
    monkeypatch.setattr(
        Config, "plugin_yaml_files", staticmethod(lambda model, model_class: files)
    )
    config = Config("SASRec", "tiny", config_dict=tiny_config)
    assert config["n_layers"] == 3 and config["hidden_act"] == "relu"


def test_external_order_file_dict_command_line(tiny_config, tmp_path, monkeypatch):
    config_file = tmp_path / "my.yaml"
    config_file.write_text("train_mode: prefix\nn_layers: 4\nlearning_rate: 0.01\n")
    files = [str(config_file)]

    config = Config("SASRec", "tiny", files, tiny_config)
    assert config["train_mode"] == "prefix"  # file > model YAML
    assert config["n_layers"] == 4

    config = Config("SASRec", "tiny", files, dict(tiny_config, n_layers=5))
    assert config["n_layers"] == 5  # config_dict > file
    assert config["learning_rate"] == 0.01

    monkeypatch.setattr(sys, "argv", ["run", "--n_layers=6", "--train_mode=sequence"])
    config = Config("SASRec", "tiny", files, dict(tiny_config, n_layers=5))
    assert config["n_layers"] == 6  # command line > config_dict
    assert config["train_mode"] == "sequence"


def test_shipped_dataset_path_does_not_depend_on_cwd(tmp_path):
    config = Config("SASRec", "amazon-beauty")
    assert config["data_path"] == str(SHIPPED_DATA_DIR / "amazon-beauty")
    assert (SHIPPED_DATA_DIR / "amazon-beauty" / "amazon-beauty.inter").is_file()
    config = Config("SASRec", "amazon-beauty", config_dict={"data_path": str(tmp_path)})
    assert config["data_path"] == str(tmp_path / "amazon-beauty")


def test_unknown_dataset_keeps_recbole_default(tiny_config):
    config = Config("SASRec", "no-such-set", config_dict={"show_progress": False})
    assert config["data_path"] == "dataset/no-such-set"


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("train_mode", "both", "'train_mode' must be one of"),
        ("epochs", "ten", "'epochs' expects a int"),
        ("learning_rate", "fast", "'learning_rate' expects a float"),
        ("reproducibility", "maybe", "'reproducibility' expects a bool"),
    ],
)
def test_bad_values_name_the_key(tiny_config, key, value, expected):
    with pytest.raises(ConfigError, match=expected):
        Config("SASRec", "tiny", config_dict=dict(tiny_config, **{key: value}))


def test_sequence_mode_needs_a_regime_aware_model(tiny_config):
    with pytest.raises(ConfigError, match="GRU4Rec only trains on RecBole's prefix"):
        Config("GRU4Rec", "tiny", config_dict=dict(tiny_config, train_mode="sequence"))
    assert Config("GRU4Rec", "tiny", config_dict=tiny_config)["train_mode"] == "prefix"


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        build_config("SASRec", "tiny", [str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML \(line \d\)"):
        build_config("SASRec", "tiny", [str(bad)])


def test_use_gpu_false_trains_on_the_cpu_where_cuda_is_there(tiny_config, monkeypatch):
    """RecBole 1.2.1 picks CUDA whenever it is available and gpu_id is set, whatever
    use_gpu says; here use_gpu: False means the CPU (CUDA faked as available)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # RecBole sets it; restored after
    on_gpu = Config("SASRec", "tiny", config_dict=dict(tiny_config, use_gpu=True))
    assert on_gpu["device"].type == "cuda"
    on_cpu = Config("SASRec", "tiny", config_dict=dict(tiny_config, use_gpu=False))
    assert on_cpu["device"].type == "cpu"


def test_flush_denormal_sets_how_the_cpu_computes_subnormals(tiny_config):
    """flush_denormal: True computes a subnormal float (below 1.2e-38) as zero; False,
    the default, keeps it. Every Config sets the mode for its process."""
    import torch

    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormal floats")
    torch.set_flush_denormal(False)
    try:
        tiny = torch.tensor([1e-39], dtype=torch.float32)
        assert tiny.item() > 0
        Config("SASRec", "tiny", config_dict=dict(tiny_config, flush_denormal=True))
        assert (tiny * 1.0).item() == 0.0
        torch.set_flush_denormal(True)  # a later Config's default turns it off
        Config("SASRec", "tiny", config_dict=tiny_config)
        assert (tiny * 1.0).item() > 0
    finally:
        torch.set_flush_denormal(False)


def test_nproc_on_cuda_needs_a_gpu_per_process(tiny_config, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match=r"nproc 2 on CUDA .* --gpu_id=0,1"):
        build_config("SASRec", "tiny", config_dict=dict(tiny_config, nproc=2))
    build_config("SASRec", "tiny", config_dict=dict(tiny_config, nproc=2, gpu_id="0,1"))
    build_config(
        "SASRec", "tiny", config_dict=dict(tiny_config, nproc=2, use_gpu=False)
    )
