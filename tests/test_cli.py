"""run_recbole_ssl.py from another folder: results, help, one-line user errors."""

from conftest import DATA_DIR, run_script


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


def test_cli_unknown_model(tmp_path):
    line = one_line_error(cli("--model=NoSuchRec", "--dataset=tiny", cwd=tmp_path))
    assert "'NoSuchRec'" in line and "SASRec" in line


def test_cli_unknown_dataset(tmp_path):
    line = one_line_error(cli("--model=SASRec", "--dataset=nope", cwd=tmp_path))
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
