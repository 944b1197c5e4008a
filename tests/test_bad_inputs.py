"""The corpus of bad inputs: each ends in exit code 2 and one line naming the file,
line, field or key, never a traceback, a silent wrong result or exit code 0.

Classes (issue 22): broken atomic files (part 1), bad config values and unknown keys
(part 2), files that are not checkpoints (part 3). Each case runs the command line's
``main`` in this process (fast: nothing trains; every case fails before or while the
data loads), with ``sys.argv`` as a user would type it, since RecBole reads its
``--key=value`` settings from there.
"""

import pytest
from conftest import DATA_DIR, main_here

TINY_INTER = (DATA_DIR / "tiny" / "tiny.inter").read_text(encoding="utf-8")
TINY_ITEM = (DATA_DIR / "tiny" / "tiny.item").read_text(encoding="utf-8")
HEADER = TINY_INTER.splitlines()[0]  # user_id:token item_id:token timestamp:float


def replace_line(text, number, line):
    """``text`` with its line ``number`` (1 = the header) replaced by ``line``."""
    lines = text.splitlines()
    lines[number - 1] = line
    return "\n".join(lines) + "\n"


def insert_line(text, number, line):
    lines = text.splitlines()
    lines.insert(number - 1, line)
    return "\n".join(lines) + "\n"


# (case, inter text, item text or None, what the one line must name)
ATOMIC_CASES = [
    ("empty file", "", None, ["broken.inter", "the file is empty"]),
    ("header, no rows", HEADER + "\n", None, ["broken.inter", "a header and no rows"]),
    (
        "no time column",
        "user_id:token\titem_id:token\n1\t1\n1\t2\n",
        None,
        ["broken.inter", "no column 'timestamp'"],
    ),
    (
        "field without a type",
        replace_line(TINY_INTER, 1, "user_id:token\titem_id\ttimestamp:float"),
        None,
        ["broken.inter, line 1", "'item_id'", "name:type"],
    ),
    (
        "unknown type",
        replace_line(TINY_INTER, 1, "user_id:token\titem_id:token\ttimestamp:date"),
        None,
        ["broken.inter, line 1", "'timestamp:date'"],
    ),
    (
        "column twice",
        "user_id:token\titem_id:token\ttimestamp:float\titem_id:token\n1\t1\t0\t1\n",
        None,
        ["broken.inter, line 1", "'item_id' appears twice"],
    ),
    (
        "second header line",
        insert_line(TINY_INTER, 4, HEADER),
        None,
        ["broken.inter, line 4", "header line again"],
    ),
    (
        "row too long",
        replace_line(TINY_INTER, 5, "1\t3\t2\t9"),
        None,
        ["broken.inter, line 5", "4 fields, expected 3"],
    ),
    (
        "row too short",
        replace_line(TINY_INTER, 6, "1\t4"),
        None,
        ["broken.inter, line 6", "2 fields, expected 3"],
    ),
    (
        "missing timestamp",  # RecBole would fill the column mean, silently
        replace_line(TINY_INTER, 7, "2\t6\t"),
        None,
        ["broken.inter, line 7", "field 'timestamp' is empty"],
    ),
    (
        "timestamp not a number",
        replace_line(TINY_INTER, 3, "1\t2\tyesterday"),
        None,
        ["broken.inter, line 3", "field 'timestamp' is 'yesterday'"],
    ),
    (
        "timestamp nan",
        replace_line(TINY_INTER, 3, "1\t2\tnan"),
        None,
        ["broken.inter, line 3", "finite number"],
    ),
    (
        "empty user id",
        replace_line(TINY_INTER, 2, "\t1\t0"),
        None,
        ["broken.inter, line 2", "field 'user_id' is empty"],
    ),
    (
        "windows line ends",
        TINY_INTER.replace("\n", "\r\n"),
        None,
        ["broken.inter, line 1", "carriage return"],
    ),
    (
        "item file row too short",
        TINY_INTER,
        replace_line(TINY_ITEM, 3, "2"),
        ["broken.item, line 3", "1 fields, expected 2"],
    ),
    (
        "item file without item_id",
        TINY_INTER,
        "attributes:token_seq\n1 2\n",
        ["broken.item", "no column 'item_id'"],
    ),
]

CONFIG_CASES = [
    (
        "--load_col={'inter':['user_id','item_id']}",  # the time field left out
        ["tiny.inter", "load_col['inter']", "without 'timestamp' (TIME_FIELD)"],
    ),
    ("--epoch=1", ["--epoch", "did you mean --epochs?"]),
    ("--learnin_rate=0.1", ["--learnin_rate", "did you mean --learning_rate?"]),
    ("--epochs 2", ["'--epochs'", "--key=value"]),
    ("--epochs=0", ["epochs must be an integer >= 1, got 0"]),
    ("--epochs=-1", ["epochs must be an integer >= 1, got -1"]),
    ("--epochs=ten", ["'epochs'", "'ten'"]),
    ("--nproc=0", ["nproc must be an integer >= 1, got 0"]),
    ("--train_batch_size=0", ["train_batch_size must be an integer >= 1"]),
    ("--eval_batch_size=-5", ["eval_batch_size must be an integer >= 1"]),
    ("--learning_rate=0", ["learning_rate must be a number > 0, got 0"]),
    ("--hidden_dropout_prob=1", ["hidden_dropout_prob must be a number in [0, 1)"]),
    ("--attn_dropout_prob=-0.1", ["attn_dropout_prob must be a number in [0, 1)"]),
    ("--MAX_ITEM_LIST_LENGTH=0", ["MAX_ITEM_LIST_LENGTH must be an integer >= 1"]),
    ("--loss_type=Hinge", ["loss_type must be one of ['CE', 'BCE', 'BPR', 'SSM']"]),
    ("--train_mode=all", ["'train_mode' must be one of"]),
    (
        "--model=GRU4Rec --train_mode=prefix --loss_type=BPR",
        ["loss_type 'BPR'", "train_neg_sample_args"],
    ),
    ("--model=GRU4Rec --train_mode=prefix --loss_type=BCE", ["loss_type 'BCE'"]),
    ("--model=S3Rec --item_attribute=[attributes,color]", ["item_attribute", "color"]),
    ("--config_files=missing.yaml", ["missing.yaml"]),
]


def run_main(monkeypatch, capsys, tmp_path, args):
    """``run_recbole_ssl.py <args>`` in this process, from ``tmp_path``; returns
    ``(exit code, the error lines, stderr)``."""
    monkeypatch.chdir(tmp_path)
    out = main_here(monkeypatch, capsys, *args)
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    return out.returncode, errors, out.stderr


def assert_one_line(code, errors, err, needles):
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    assert len(errors) == 1, errors
    (line,) = errors
    assert line.startswith("run_recbole_ssl.py: error: ")
    for needle in needles:
        assert needle in line, line


@pytest.mark.parametrize(
    "inter, item, needles",
    [case[1:] for case in ATOMIC_CASES],
    ids=[case[0] for case in ATOMIC_CASES],
)
def test_a_broken_atomic_file_is_one_line(
    monkeypatch, capsys, tmp_path, inter, item, needles
):
    folder = tmp_path / "data" / "broken"
    folder.mkdir(parents=True)
    (folder / "broken.inter").write_bytes(inter.encode("utf-8"))
    (folder / "broken.item").write_text(item or TINY_ITEM, encoding="utf-8")
    args = [
        "--model=SASRec",
        "--dataset=broken",
        f"--data_path={tmp_path / 'data'}",
        "--epochs=1",
        "--state=ERROR",
    ]
    assert_one_line(*run_main(monkeypatch, capsys, tmp_path, args), needles)


@pytest.mark.parametrize(
    "options, needles",
    CONFIG_CASES,
    ids=[case[0] for case in CONFIG_CASES],
)
def test_a_bad_setting_is_one_line(monkeypatch, capsys, tmp_path, options, needles):
    args = ["--dataset=tiny", f"--data_path={DATA_DIR}", *options.split()]
    if not options.startswith("--model="):
        args.insert(0, "--model=SASRec")
    assert_one_line(*run_main(monkeypatch, capsys, tmp_path, args), needles)


@pytest.mark.parametrize("option", ["--evaluate", "--resume"])
def test_a_file_that_is_not_a_checkpoint_is_one_line(
    monkeypatch, capsys, tmp_path, option
):
    notes = tmp_path / "notes.pth"
    notes.write_text("not a checkpoint")
    args = ["--model=SASRec", "--dataset=tiny", f"{option}={notes}"]
    code, errors, err = run_main(monkeypatch, capsys, tmp_path, args)
    assert_one_line(code, errors, err, ["notes.pth"])
    assert "weights_only" not in err  # torch's hint, which we must never suggest
    args[-1] = f"{option}={tmp_path / 'gone.pth'}"
    assert_one_line(*run_main(monkeypatch, capsys, tmp_path, args), ["gone.pth"])


def test_the_corpus_covers_every_class():
    """docs/usage.md states this count; keep it in step (tests/test_bad_inputs.py)."""
    assert len(ATOMIC_CASES) >= 10 and len(CONFIG_CASES) >= 15
