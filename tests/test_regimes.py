"""The two training regimes, history-masked evaluation, and SASRec against RecBole's."""

import math
from pathlib import Path

import pytest
import torch
from recbole.model.sequential_recommender import SASRec as RecBoleSASRec
from recbole.utils import init_seed

from recbole_ssl.config import Config
from recbole_ssl.model import SASRec
from recbole_ssl.quick_start import run_recbole_ssl
from recbole_ssl.utils import create_dataset, data_preparation

TINY_INTER = Path(__file__).resolve().parent / "data" / "tiny" / "tiny.inter"


def tiny_sequences():
    """user token -> item tokens in order, read straight from the atomic file."""
    sequences = {}
    for line in TINY_INTER.read_text().splitlines()[1:]:
        user, item, _ = line.split("\t")
        sequences.setdefault(user, []).append(item)
    return sequences


def prepare(config_dict, model="SASRec"):
    config = Config(model, "tiny", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    return config, dataset, data_preparation(config, dataset)


def per_target_losses(config_dict, train_mode):
    """{(user, output position): loss} over one pass of the training data, eval mode."""
    config, _, (train_data, _, _) = prepare(dict(config_dict, train_mode=train_mode))
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).eval()
    losses = {}
    with torch.no_grad():
        for batch in train_data:
            seq_output = model.encode(batch[model.ITEM_SEQ])
            loss = model.next_item_loss(
                seq_output, batch, model.item_embedding.weight, reduction="none"
            )
            rows, positions = torch.nonzero(
                model.next_item_targets(batch), as_tuple=True
            )
            users = batch[config["USER_ID_FIELD"]][rows]
            keys = zip(users.tolist(), positions.tolist(), strict=True)
            for key, value in zip(keys, loss.tolist(), strict=True):
                assert key not in losses
                losses[key] = value
    return losses


def test_regimes_give_equal_per_target_losses(tiny_config):
    prefix = per_target_losses(tiny_config, "prefix")
    sequence = per_target_losses(tiny_config, "sequence")
    n_targets = sum(len(s) - 3 for s in tiny_sequences().values())
    assert len(prefix) == n_targets  # every training target, once
    assert prefix.keys() == sequence.keys()
    for key, value in prefix.items():
        assert sequence[key] == pytest.approx(value, rel=1e-4, abs=1e-5)


def test_sequence_regime_keeps_each_users_longest_prefix(tiny_config):
    config, dataset, (train_data, valid_data, _) = prepare(
        dict(tiny_config, train_mode="sequence")
    )
    train = train_data._dataset.inter_feat
    sequences = tiny_sequences()
    assert len(train) == len(sequences)  # one row per user
    uid_field = config["USER_ID_FIELD"]
    users = dataset.id2token(uid_field, train[uid_field].numpy())
    lengths = train[config["ITEM_LIST_LENGTH_FIELD"]].tolist()
    assert lengths == [len(sequences[u]) - 3 for u in users]
    # validation rows are RecBole's own in both regimes
    _, _, (_, prefix_valid, _) = prepare(dict(tiny_config, train_mode="prefix"))
    assert len(valid_data._dataset) == len(prefix_valid._dataset) == len(sequences)


def test_sequence_regime_does_not_change_stored_data(tiny_config):
    _, dataset, (train_data, _, _) = prepare(dict(tiny_config, train_mode="sequence"))
    n_users = len(tiny_sequences())
    assert len(dataset.inter_feat) == sum(len(s) - 1 for s in tiny_sequences().values())
    assert len(train_data._dataset) == n_users


@pytest.mark.parametrize("max_len", [50, 5])
def test_evaluation_masks_the_whole_history(tiny_config, max_len):
    config, dataset, (_, valid_data, test_data) = prepare(
        dict(tiny_config, MAX_ITEM_LIST_LENGTH=max_len)
    )
    uid_field, iid_field = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    sequences = tiny_sequences()
    for loader, cut in ((valid_data, 2), (test_data, 1)):
        checked = 0
        for interaction, (history_u, history_i), _, positive_i in loader:
            users = dataset.id2token(uid_field, interaction[uid_field].numpy())
            for row, user in enumerate(users):
                expected = sequences[user][:-cut]  # everything before the target
                got = history_i[history_u == row].numpy()
                assert sorted(dataset.id2token(iid_field, got)) == sorted(expected)
                checked += 1
            assert positive_i.tolist() == interaction[iid_field].tolist()
        assert checked == len(sequences)


def test_prefix_loss_equals_recbole_sasrec(tiny_config):
    config, _, (train_data, _, _) = prepare(dict(tiny_config, train_mode="prefix"))
    init_seed(config["seed"], config["reproducibility"])
    ours = SASRec(config, train_data._dataset).eval()
    core = RecBoleSASRec(config, train_data._dataset).eval()
    core.load_state_dict(ours.state_dict(), strict=False)
    batch = next(iter(train_data))
    with torch.no_grad():
        assert ours.calculate_loss(batch).item() == pytest.approx(
            core.calculate_loss(batch).item(), rel=1e-5
        )
        assert torch.allclose(
            ours.full_sort_predict(batch), core.full_sort_predict(batch), atol=1e-5
        )


def test_sequence_loss_gradients_reach_all_used_parameters(tiny_config):
    config, _, (train_data, _, _) = prepare(dict(tiny_config, train_mode="sequence"))
    model = SASRec(config, train_data._dataset).train()
    model.calculate_loss(next(iter(train_data))).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def metrics_finite(result):
    values = list(result["test_result"].values()) + list(
        result["best_valid_result"].values()
    )
    return values and all(math.isfinite(v) for v in values)


@pytest.mark.parametrize("train_mode", ["prefix", "sequence"])
@pytest.mark.parametrize("loss_type", ["CE", "BCE", "BPR"])
def test_smoke_one_epoch_in_both_regimes(tiny_config, train_mode, loss_type):
    """Smoke test, kept on purpose: both regimes and losses run end to end. The
    losses themselves are pinned by the exact tests here and in test_negatives.py."""
    config_dict = dict(tiny_config, train_mode=train_mode, loss_type=loss_type)
    result = run_recbole_ssl("SASRec", "tiny", config_dict=config_dict)
    assert metrics_finite(result)
    assert set(result["test_result"]) == {
        f"{m}@{k}" for m in ("hit", "ndcg") for k in (5, 10, 20)
    }


def test_smoke_recbole_core_models_run_through_the_plugin(tiny_config):
    """Smoke test, kept on purpose: RecBole's own models train through the plugin's
    entry point; and RecBole's class keeps RecBole's defaults (a behaviour)."""
    core_sasrec = run_recbole_ssl(RecBoleSASRec, "tiny", config_dict=dict(tiny_config))
    assert metrics_finite(core_sasrec)
    # RecBole's class keeps RecBole's defaults, not the plugin's SASRec.yaml
    assert (
        Config(RecBoleSASRec, "tiny", config_dict=tiny_config)["train_mode"] == "prefix"
    )
    assert metrics_finite(run_recbole_ssl("STAMP", "tiny", config_dict=tiny_config))


def test_length_grouped_encoding_is_exact(tiny_config):
    config, _, (train_data, _, _) = prepare(dict(tiny_config, train_mode="sequence"))
    model = SASRec(config, train_data._dataset).eval()
    item_seq = torch.cat([batch[model.ITEM_SEQ] for batch in train_data])
    lengths = (item_seq > 0).sum(1)
    assert {8, 9, 16, 17}.issubset(set(lengths.tolist()))  # rows at the group edges
    with torch.no_grad():
        grouped, full = model.encode(item_seq), model.encode_full(item_seq)
    real = torch.arange(item_seq.size(1)) < lengths[:, None]
    assert torch.allclose(grouped[real], full[real], atol=1e-5)
    assert (grouped[~real] == 0).all()
