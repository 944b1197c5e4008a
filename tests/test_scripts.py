"""run_hyper.py with the plugin's objective, and CI running the README's commands."""

import re

import pytest
import torch
from conftest import DATA_DIR, REPO_DIR, run_script

from recbole_ssl.record import load


def run_benchmark(script, *options, cwd):
    """``script`` on the tests' tiny dataset."""
    return run_script(
        script, "--dataset=tiny", f"--data_path={DATA_DIR}", *options, cwd=cwd
    )


def test_run_hyper_two_trials(tmp_path):
    params = tmp_path / "hyper.test"
    params.write_text("learning_rate choice [0.001,0.01]\n")
    out = run_script(
        "run_hyper.py",
        "--model=SASRec",
        "--dataset=tiny",
        f"--params_file={params}",
        "--config_files=SASRec-paper",  # a shipped preset, by name
        "--output_file=hyper.result",
        f"--data_path={DATA_DIR}",
        "--epochs=1",
        "--show_progress=False",
        f"--checkpoint_dir={tmp_path / 'saved'}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = (tmp_path / "hyper.result").read_text()
    assert "learning_rate:0.001" in result and "learning_rate:0.01" in result
    assert result.count("Test result:") == 2
    # each trial leaves its run record
    trials = [
        load(f) for f in sorted((tmp_path / "results" / "runs" / "tiny").glob("*"))
    ]
    assert [r["entry"] for r in trials] == ["objective_function"] * 2
    assert sorted(r["config"]["learning_rate"] for r in trials) == [0.001, 0.01]
    assert all(r["config"]["loss_type"] == "BCE" for r in trials)  # the preset's
    assert all(r["status"] == "finished" and r["test"] for r in trials)


def readme_block(title):
    readme = (REPO_DIR / "README.md").read_text()
    match = re.search(rf"## {title}\n.*?```bash\n(.*?)\n```", readme, re.S)
    return match.group(1).strip()


def test_ci_runs_the_readme_commands_verbatim():
    ci = (REPO_DIR / ".ci" / "run").read_text().splitlines()
    for line in readme_block("Test").splitlines():
        assert line.split("  #")[0].strip() in ci, line
    # the user's install (getting started) is CI's without the test tools
    (install,) = [
        line for line in readme_block("Getting started").splitlines() if "pip" in line
    ]
    assert install.replace("-e .", '-e ".[test]"') in ci, install


def test_regime_speed_benchmark_runs(tmp_path):
    out = run_benchmark(
        "benchmarks/regime_speed.py",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    table = [line.split() for line in out.stdout.splitlines()]
    rows = {
        cells[0]: cells for cells in table if len(cells) == 5 and cells[1].isdigit()
    }
    assert int(rows["sequence"][1]) == 289  # one row per user
    # the process's peak resident MiB: above the interpreter with torch, below 24 GiB
    assert all(100 < float(cells[4]) < 24 * 1024 for cells in rows.values())
    assert int(rows["prefix"][1]) == int(rows["recbole"][1]) > 289
    assert "prefix / sequence time per epoch:" in out.stdout


def test_contrastive_speed_benchmark_runs(tmp_path):
    out = run_benchmark(
        "benchmarks/contrastive_speed.py",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {
        cells[0]: cells
        for cells in map(str.split, out.stdout.splitlines())
        if len(cells) == 6 and cells[2].endswith("x")
    }
    assert set(rows) == {"SASRec", "CL4SRec", "CoSeRec", "ICLRec"}
    assert rows["SASRec"][2] == rows["SASRec"][4] == "1.00x"  # epoch, evaluation
    assert all(float(rows[m][1]) > 0 and float(rows[m][3]) > 0 for m in rows)
    # the process's peak resident MiB: above the interpreter with torch, below 24 GiB
    assert all(100 < float(rows[m][5]) < 24 * 1024 for m in rows)
    assert "CoSeRec ItemCF-IUF table:" in out.stdout
    assert "CoSeRec hybrid refresh:" in out.stdout
    assert re.search(r"ICLRec E-step: [0-9.]+ s \([0-9.]+% of its epoch\)", out.stdout)


def test_contrastive_gradients_benchmark_runs(tmp_path):
    out = run_benchmark(
        "benchmarks/contrastive_gradients.py",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines()[2:]]
    assert [row[:3] for row in rows][:2] == [
        ["concat", "dot", "1"],
        ["mean", "dot", "1"],
    ]
    assert len(rows) == 6
    for row in rows:
        rec, cl, ratio = float(row[3]), float(row[4]), float(row[5].rstrip("x"))
        assert rec > 0 and cl > 0 and ratio == pytest.approx(cl / rec, rel=0.01)


def test_lookup_speed_benchmark_runs(tmp_path):
    out = run_script("benchmarks/lookup_speed.py", "--repeats=4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.rsplit(None, 3) for line in out.stdout.splitlines()[2:]]
    assert [row[1] for row in rows] == ["table[ids]", "take_rows"] * 2
    for _case, lookup, ms, differ in rows:
        assert float(ms) > 0 and differ.endswith("/3")
        if lookup == "take_rows":
            assert differ == "0/3"


def test_mminforec_collapse_benchmark_runs(tmp_path):
    out = run_benchmark(
        "benchmarks/mminforec_collapse.py",
        "--steps=3",
        "--settings",
        '{"mince_similarity": "cos", "mince_temperature": 0.3}',
        '{"mince_similarity": "dot", "mince_temperature": 3.333, "memory_type": "none"}',
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines()[2:]]
    assert [row[:2] for row in rows] == [["cos", "0.3"], ["dot", "3.333"]]
    assert '"memory_type": "none"' in out.stdout
    for row in rows:
        first, last, uniform, cos = (float(v) for v in row[-5:-1])
        assert first > 0 and last > 0 and uniform > 0 and -1 <= cos <= 1


def test_dssrec_pace_benchmark_runs(tmp_path):
    out = run_benchmark(
        "benchmarks/dssrec_pace.py",
        "--steps=2",
        "--settings",
        '{"model": "SASRec"}',
        '{"model": "DSSRec", "s2s_weight": 0.5}',
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = out.stdout.splitlines()[2:]
    assert [row.split("}")[0] + "}" for row in rows] == [
        '{"model": "SASRec"}',
        '{"model": "DSSRec", "s2s_weight": 0.5}',
    ]
    sasrec, dssrec = ([float(v) for v in row.split("}")[1].split()] for row in rows)
    assert sasrec[3] == 0 and dssrec[3] > 0  # only DSSRec has a seq2seq part
    for first, last, uniform, _, seconds in (sasrec, dssrec):
        assert 0 < first < 2 * uniform and 0 < last < 2 * uniform and seconds > 0


def test_probes_train_without_the_anomaly_detection_recbole_turns_on(monkeypatch):
    """RecBole's sine.py, imported with its models, turns autograd's anomaly detection
    on for the process; the probes' steps run as the trainers' do, without it (unless
    detect_anomaly), so that their seconds are the training's."""
    import argparse

    from bench_probe import first_batches, train_from_seed

    from recbole_ssl.model.dssrec import DSSRec

    args = argparse.Namespace(dataset="tiny", data_path=str(DATA_DIR), steps=2)
    config = {"state": "ERROR", "train_mode": "sequence"}
    dataset, batches = first_batches("DSSRec", args, config)
    seen = []
    loss = DSSRec.calculate_loss
    monkeypatch.setattr(
        DSSRec,
        "calculate_loss",
        lambda self, batch: seen.append(torch.is_anomaly_enabled())
        or loss(self, batch),
    )
    # on, as RecBole's sine.py leaves it for every process that imports its models
    before = torch.is_anomaly_enabled()
    torch.autograd.set_detect_anomaly(True)
    try:
        train_from_seed("DSSRec", args, config, dataset, batches)
        assert torch.is_anomaly_enabled()  # the process's setting, restored
        train_from_seed(
            "DSSRec", args, dict(config, detect_anomaly=True), dataset, batches
        )
        torch.autograd.set_detect_anomaly(False)
        train_from_seed("DSSRec", args, config, dataset, batches)
        assert not torch.is_anomaly_enabled()
    finally:
        torch.autograd.set_detect_anomaly(before)
    assert seen == [False, False, True, True, False, False]


def test_dssrec_init_scale_benchmark(tmp_path):
    out = run_benchmark(
        "benchmarks/dssrec_init_scale.py",
        "--steps=2",
        "--settings",
        "{}",
        '{"s2i_scale": false}',
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines()[2:]]
    assert [(row[0], row[1]) for row in rows] == [
        ("preset", "0"),
        ("preset", "2"),
        ("s2i_scale=False", "0"),
        ("s2i_scale=False", "2"),
    ]
    preset, unscaled = ([float(v) for v in rows[i][2:]] for i in (0, 2))
    positions, candidates, ln, part, item, std, top, loss = preset
    assert candidates == 4 * positions  # the preset's four intentions per target
    assert ln == pytest.approx(torch.log(torch.tensor(candidates)).item(), abs=0.01)
    # the same fresh model: only the 1/sqrt(64) scale differs
    assert unscaled[:5] == preset[:5]
    assert unscaled[5] == pytest.approx(8 * std, rel=0.01)
    assert unscaled[6] == pytest.approx(8 * top, rel=0.01)
    assert abs(loss - ln) < 0.05  # tiny scaled scores: a uniform start


def test_dssrec_pace_benchmark_rejects_a_setting_without_model(tmp_path):
    out = run_benchmark(
        "benchmarks/dssrec_pace.py",
        "--settings",
        '{"s2s_weight": 0.5}',
        cwd=tmp_path,
    )
    assert out.returncode == 2 and 'needs "model"' in out.stderr


def test_s3rec_speed_benchmark_runs(tmp_path):
    out = run_script(
        "benchmarks/s3rec_speed.py",
        "--dataset=tiny",
        f"--data_path={DATA_DIR}",
        "--batches=2",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {
        " ".join(cells[:2]): cells
        for cells in map(str.split, out.stdout.splitlines())
        if len(cells) == 5 and not cells[0].startswith("#")
    }
    assert set(rows) == {"RecBole core", "plugin sequence", "plugin prefix"}
    assert int(rows["plugin prefix"][2]) == int(rows["RecBole core"][2]) > 289
    assert int(rows["plugin sequence"][2]) == 289
    assert re.search(r"RecBole core / plugin sequence per epoch: [0-9.]+x", out.stdout)
    assert re.search(r"S3Rec finetune / SASRec per epoch: [0-9.]+x", out.stdout)
    finetune = [
        cells
        for cells in map(str.split, out.stdout.splitlines())
        if len(cells) == 4 and cells[0] in ("SASRec", "S3Rec")
    ]
    assert len(finetune) == 2 and all(100 < float(c[3]) < 24 * 1024 for c in finetune)


def test_speed_benchmark_takes_other_models_and_two_settings_of_one(tmp_path):
    out = run_benchmark(
        "benchmarks/contrastive_speed.py",
        "--models=SASRec,DSSRec,MMInfoRec,MMInfoRec[ce_weight=0;memory_type=none]",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"DSSRec\s+[0-9.]+\s+[0-9.]+x", out.stdout)
    assert re.search(r"\nMMInfoRec\s+[0-9.]+\s+[0-9.]+x", out.stdout)
    assert re.search(
        r"MMInfoRec\[ce_weight=0;memory_type=none\]\s+[0-9.]+\s+[0-9.]+x", out.stdout
    )


def test_speed_benchmark_rejects_a_malformed_override(tmp_path):
    out = run_benchmark(
        "benchmarks/contrastive_speed.py",
        "--models=SASRec,MMInfoRec[ce_weight]",
        cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "'ce_weight' in 'MMInfoRec[ce_weight]' is not key=value" in out.stderr


def test_popularity_bias_ranks_agree_with_recbole(tmp_path, tiny_config, monkeypatch):
    from popularity_bias import main

    from recbole_ssl.quick_start import run_recbole_ssl

    run_recbole_ssl("MMInfoRec", "tiny", config_dict=tiny_config)
    (checkpoint,) = set((tmp_path / "saved").glob("*.pth")) - set(
        (tmp_path / "saved").glob("*-last.pth")
    )
    out = run_script(
        "benchmarks/popularity_bias.py", str(checkpoint), "--k=10", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    head = re.search(
        r"\(MMInfoRec, (\d+) test users\)\n  NDCG@10 ([0-9.]+) \(RecBole: ([0-9.]+)\)",
        out.stdout,
    )
    users, ours, recbole = int(head.group(1)), float(head.group(2)), head.group(3)
    assert ours == pytest.approx(float(recbole), abs=5e-5)  # RecBole rounds to 4
    buckets = re.findall(r"target popularity \d+-\d+ \((\d+) users\)", out.stdout)
    assert len(buckets) <= 5 and sum(map(int, buckets)) == users == 289

    def fails(*args):  # the script's SystemExit: its one line, exit status 1
        monkeypatch.setattr("sys.argv", ["popularity_bias.py", *args])
        with pytest.raises(SystemExit) as exit:
            main()
        assert isinstance(exit.value.code, str)  # printed to stderr, status 1
        return exit.value.code

    assert fails("nope.pth") == "checkpoint not found: nope.pth"
    foreign = tmp_path / "recbole.pth"
    torch.save({"state_dict": {}}, foreign)  # no config, unlike the plugin's own
    assert "is not a checkpoint saved by recbole_ssl" in fails(str(foreign))


def test_catalogue_scale_benchmark_runs(tmp_path):
    out = run_script(
        "benchmarks/catalogue_scale.py",
        "--sizes=60,300",
        "--users=25",
        "--interactions=150",
        "--negatives=8",
        f"--data_dir={tmp_path / 'data'}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [
        cells
        for cells in map(str.split, out.stdout.splitlines())
        if len(cells) == 5 and cells[0].isdigit()
    ]
    assert [(cells[0], cells[1]) for cells in rows] == [
        ("60", "CE"),
        ("60", "SSM"),
        ("300", "CE"),
        ("300", "SSM"),
    ]
    assert all(float(cells[2]) > 0 and float(cells[3]) > 0 for cells in rows)
    assert all(100 < float(cells[4]) < 24 * 1024 for cells in rows)


def test_mminforec_authors_ranks_with_history_and_padding_out_and_ties_against():
    import sys

    import numpy as np
    from scipy.sparse import csr_matrix

    sys.path.insert(0, str(REPO_DIR / "benchmarks"))
    from mminforec_authors import our_protocol

    # two users, items 0 (padding) .. 4; scores as their model would give them
    scores = torch.tensor([[9.0, 1.0, 5.0, 5.0, 7.0], [3.0, 2.0, 4.0, 4.0, 1.0]])

    class Net:
        def eval(self):
            pass

        def cal_test_emb(self):
            pass

        def finetune(self, batch, flag):
            assert flag == "test"
            return batch[0]  # the user ids: their scores below

    class Their:
        def predict_full_att(self, users):
            return scores[users].clone()

    history = csr_matrix(np.array([[0, 0, 0, 0, 1], [0, 0, 0, 1, 0]]))
    batch = (torch.tensor([0, 1]), torch.tensor([2, 1]))  # users, answers
    figures = our_protocol(Net(), Their(), [batch], history)
    # user 0: item 0 (9) and item 4 (history, 7) out; item 3 ties the answer (5) and
    # counts above it: rank 1. User 1: item 3 out; item 2 (4) above the answer (2):
    # rank 1 as well, ties not involved
    assert figures["hit@5"] == 1.0
    assert figures["ndcg@5"] == pytest.approx(1 / np.log2(3))
    # a collapsed model ranks its target last (third of three candidates), not first
    scores[:] = 1.0
    collapsed = our_protocol(Net(), Their(), [batch], history)
    assert collapsed["ndcg@5"] == pytest.approx(1 / np.log2(4))


def test_mminforec_same_batch_maps_torch_transformer_layers_onto_recboles(
    monkeypatch,
):
    """The authors' ``nn.TransformerEncoder`` (post-LayerNorm, ReLU) and RecBole's
    ``TransformerEncoder`` compute the same, dropout off, once
    ``transformer_layers`` has copied the one's tensors into the other (a causal
    mask, as ``g_ta``'s)."""
    import sys

    from recbole.model.layers import TransformerEncoder
    from torch import nn

    monkeypatch.setattr(sys, "path", [str(REPO_DIR / "benchmarks"), *sys.path])
    from mminforec_same_batch import transformer_layers

    torch.manual_seed(0)
    theirs = nn.Module()
    theirs.ar_att = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 8, 0.0), 2)
    ours = TransformerEncoder(
        n_layers=2,
        n_heads=2,
        hidden_size=8,
        inner_size=8,
        hidden_dropout_prob=0.0,
        attn_dropout_prob=0.0,
        hidden_act="relu",
        layer_norm_eps=1e-5,
    )
    mapped = transformer_layers(theirs.state_dict(), "ar_att", "trm", 2)
    ours.load_state_dict({k[len("trm.") :]: v for k, v in mapped.items()})
    theirs.eval()
    ours.eval()
    x = torch.randn(3, 5, 8)  # [B, L, D]
    causal = torch.triu(torch.full((5, 5), float("-inf")), diagonal=1)
    with torch.no_grad():
        want = theirs.ar_att(x.transpose(0, 1), mask=causal).transpose(0, 1)
        additive = torch.where(causal == 0, 0.0, -10000.0)[None, None]
        got = ours(x, additive, output_all_encoded_layers=False)[-1]
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize(
    "script, theirs",
    [
        ("mminforec_authors.py", "run_mminforec"),
        ("s3rec_authors_pretrain.py", "run_pretrain"),
    ],
)
def test_authors_runs_name_a_checkout_without_their_code(script, theirs, tmp_path):
    out = run_script(
        f"benchmarks/{script}",
        f"--authors={tmp_path}",
        f"--state={tmp_path / 'state.pt'}",
        cwd=tmp_path,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"{script}: --authors: no {theirs}.py under '{tmp_path}'" in out.stderr


def test_authors_code_stops_their_script_at_its_parser(tmp_path, monkeypatch):
    """Their script runs main() on import; it is stopped at parse_args, and the
    parser, their modules and argparse itself come back as they were."""
    import argparse
    import sys

    monkeypatch.syspath_prepend(str(REPO_DIR / "benchmarks"))
    import authors_code

    (tmp_path / "their_helper.py").write_text("VALUE = 7\n")
    (tmp_path / "run_theirs.py").write_text(
        "import argparse\n\n\ndef main():\n"
        "    parser = argparse.ArgumentParser()\n"
        "    parser.add_argument('--x', type=int, default=3)\n"
        "    parser.parse_args()\n"
        "    raise SystemExit('their main() went past parse_args')\n\n\nmain()\n"
    )
    (tmp_path / "run_silent.py").write_text("VALUE = 1\n")
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_authors prepends
    original = argparse.ArgumentParser.parse_args
    try:
        modules, parser = authors_code.import_authors(
            str(tmp_path), "run_theirs", ("their_helper",), "prog.py"
        )
        assert modules["their_helper"].VALUE == 7
        assert argparse.ArgumentParser.parse_args is original
        assert parser.parse_args([]).x == 3
        with pytest.raises(SystemExit, match="prog.py: their run_silent.py built no"):
            authors_code.import_authors(str(tmp_path), "run_silent", (), "prog.py")
    finally:
        for name in ("run_theirs", "run_silent", "their_helper"):
            sys.modules.pop(name, None)

    # a state file is whole or absent
    path = str(tmp_path / "state.pt")
    authors_code.save_state(path, {"epoch": 4})
    assert torch.load(path)["epoch"] == 4
    assert not (tmp_path / "state.pt.partial").exists()


def test_sweep_runs_jobs_side_by_side_and_stops_the_rest_at_the_deadline(tmp_path):
    data = f"--dataset=tiny --data_path={DATA_DIR}"
    jobs = tmp_path / "jobs"
    jobs.write_text(
        "# one training that ends, one that the deadline stops\n"
        f"short: --model=SASRec {data} --epochs=1 --seed=1\n"
        f"long: --model=SASRec {data} --epochs=100000 --stopping_step=100000  # never\n"
    )
    out = tmp_path / "out"
    run = run_script(
        "results/sweep.py",
        f"--jobs={jobs}",
        f"--out={out}",
        "--deadline=50",
        "--grace=120",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "short: exit 0" in run.stdout
    assert "long: exit 143" in run.stdout  # SIGTERM: SystemExit(143)
    records = {r["seed"]: r for r in map(load, (out / "records" / "tiny").glob("*"))}
    assert records[1]["status"] == "finished" and records[1]["test"]
    long = records[2020]  # RecBole's default seed
    assert long["status"] == "interrupted" and long["epochs_run"] >= 1
    last = list((out / "long").glob("*-last.pth"))
    assert len(last) == 1  # what --resume takes
    assert re.search(r"long: exit 143, \d+ s, last epoch \d+", run.stdout)


def test_sweep_names_the_line_of_a_bad_job(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.write_text("ok: --model=SASRec\nno colon here\n")
    run = run_script(
        "results/sweep.py",
        f"--jobs={jobs}",
        f"--out={tmp_path / 'out'}",
        "--deadline=1",
        cwd=tmp_path,
    )
    assert run.returncode == 1
    assert run.stderr.strip() == (
        f"{jobs}:2: expected 'name: options' (name of letters, digits, '.', '_' and "
        "'-'), got 'no colon here'"
    )
    assert not (tmp_path / "out").exists()  # nothing started


def test_profile_batches_profiles_coserec_with_its_item_correlation(tmp_path):
    # substitute and insert need the item correlation that CoSeRec's trainer attaches
    out = run_benchmark(
        "benchmarks/profile_batches.py", "--model=CoSeRec", "--batches=2", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "training, 2 batches:" in out.stdout
    assert "full-sort scoring, 2 batches:" in out.stdout
