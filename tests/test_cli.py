"""run_recbole_ssl.py from another folder: results, help, one-line user errors."""

from conftest import DATA_DIR, main_here, run_script


def cli(*args, cwd):
    return run_script("run_recbole_ssl.py", *args, cwd=cwd)


def test_cli_runs_from_another_folder(tmp_path):
    out = cli(
        "--model=SASRec",
        "--dataset=tiny",
        f"--data_path={DATA_DIR}",
        "--epochs=1",
        "--show_progress=False",
        f"--checkpoint_dir={tmp_path / 'ckpt'}",
        f"--log_dir={tmp_path / 'logs'}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "test result" in out.stderr
    assert "ndcg@20" in out.stderr
    assert list((tmp_path / "ckpt").glob("SASRec-*.pth"))
    assert list((tmp_path / "logs" / "SASRec").glob("SASRec-tiny-*.log"))


def test_cli_help(tmp_path):
    out = cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "--model" in out.stdout and "--dataset" in out.stdout
    assert "--config_files" in out.stdout and "--key=value" in out.stdout


def one_line_error(out):
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("run_recbole_ssl.py: error:")
    assert "Traceback" not in out.stderr
    return lines[-1]


def test_cli_unknown_model(monkeypatch, capsys):
    out = main_here(monkeypatch, capsys, "--model=NoSuchRec", "--dataset=tiny")
    line = one_line_error(out)
    assert "'NoSuchRec'" in line and "SASRec" in line


def test_cli_unknown_dataset(monkeypatch, capsys):
    out = main_here(monkeypatch, capsys, "--model=SASRec", "--dataset=nope")
    line = one_line_error(out)
    assert "nope.inter" in line and "dataset_atomic" in line


def test_cli_bad_value_and_missing_config_file(tmp_path):
    line = one_line_error(
        cli("--model=SASRec", "--dataset=tiny", "--epochs=ten", cwd=tmp_path)
    )
    assert "'epochs'" in line
    line = one_line_error(
        cli(
            "--model=SASRec",
            "--dataset=tiny",
            "--config_files=missing.yaml",
            cwd=tmp_path,
        )
    )
    assert "missing.yaml" in line


def test_a_shipped_preset_is_found_by_its_name_and_a_file_wins(tmp_path, monkeypatch):
    import os

    from recbole_ssl.cli import PRESETS_DIR, resolve_config_file

    monkeypatch.chdir(tmp_path)
    preset = os.path.join(PRESETS_DIR, "ICLRec-paper.yaml")
    assert resolve_config_file("ICLRec-paper") == preset
    assert resolve_config_file("ICLRec-paper.yaml") == preset
    (tmp_path / "ICLRec-paper.yaml").write_text("epochs: 1\n")  # the user's own file
    assert resolve_config_file("ICLRec-paper.yaml") == "ICLRec-paper.yaml"
    # a path, or a name that is no preset, stays what it was (and fails as before)
    assert resolve_config_file("sub/ICLRec-paper") == "sub/ICLRec-paper"
    assert resolve_config_file("NoSuch-paper") == "NoSuch-paper"


def test_cli_runs_a_preset_by_name(tmp_path):
    out = cli(
        "--model=SASRec",
        "--dataset=tiny",
        f"--data_path={DATA_DIR}",
        "--config_files=SASRec-paper",
        "--epochs=1",
        "--show_progress=False",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    from recbole_ssl.record import load

    (path,) = (tmp_path / "results" / "runs" / "tiny").glob("*.json")
    record = load(path)
    assert record["config"]["loss_type"] == "BCE"  # the preset's, not the default CE
    assert record["presets"] == ["SASRec-paper"]
