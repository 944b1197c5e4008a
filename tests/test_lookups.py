"""Plugin-first lookups with RecBole fallback."""

import pytest
from recbole.model.sequential_recommender import GRU4Rec
from recbole.model.sequential_recommender import SASRec as RecBoleSASRec
from recbole.trainer import KGATTrainer as RecBoleKGATTrainer
from recbole.trainer import Trainer as RecBoleTrainer
from recbole.utils import ModelType

from recbole_ssl.config import Config
from recbole_ssl.model import SASRec
from recbole_ssl.trainer import PluginTrainerMixin, S3RecTrainer, Trainer
from recbole_ssl.utils import (
    DatasetNotFoundError,
    ModelNotFoundError,
    create_dataset,
    get_model,
    get_trainer,
)


def test_get_model_plugin_first_then_recbole():
    assert get_model("SASRec") is SASRec
    assert issubclass(SASRec, RecBoleSASRec)
    assert get_model("GRU4Rec") is GRU4Rec


def test_unknown_model_lists_available_models():
    with pytest.raises(ModelNotFoundError) as err:
        get_model("NoSuchRec")
    message = str(err.value)
    assert "'NoSuchRec'" in message
    assert "SASRec" in message and "GRU4Rec" in message and "BPR" in message


def test_get_trainer_gives_plugin_fixes_to_every_trainer():
    assert get_trainer(ModelType.SEQUENTIAL, "SASRec") is Trainer
    core = get_trainer(ModelType.SEQUENTIAL, "GRU4Rec")
    assert issubclass(core, PluginTrainerMixin) and issubclass(core, RecBoleTrainer)
    kgat = get_trainer(ModelType.KNOWLEDGE, "KGAT")  # a core model's own trainer
    assert issubclass(kgat, RecBoleKGATTrainer) and issubclass(kgat, PluginTrainerMixin)
    # a plugin trainer of a name RecBole also has wins
    assert get_trainer(ModelType.SEQUENTIAL, "S3Rec") is S3RecTrainer


def test_missing_dataset_fails_fast_naming_folders(tmp_path, monkeypatch):
    import recbole.data.dataset.dataset as recbole_dataset

    def no_download(self):
        raise AssertionError("RecBole's download must not be reached")

    monkeypatch.setattr(recbole_dataset.Dataset, "_download", no_download)
    config = Config("SASRec", "no-such-set", config_dict={"data_path": str(tmp_path)})
    with pytest.raises(DatasetNotFoundError) as err:
        create_dataset(config)
    message = str(err.value)
    assert "no-such-set.inter" in message
    assert str(tmp_path / "no-such-set") in message
    assert "dataset_atomic" in message


def test_pre_split_benchmark_files_are_found(tmp_path, tiny_config):
    folder = tmp_path / "split"
    folder.mkdir()
    config = Config(
        "SASRec",
        "split",
        config_dict=dict(
            tiny_config,
            data_path=str(tmp_path),
            benchmark_filename=["train", "valid", "test"],
        ),
    )
    with pytest.raises(
        DatasetNotFoundError, match="split.train.inter, split.valid.inter"
    ):
        create_dataset(config)
