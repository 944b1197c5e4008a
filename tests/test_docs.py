"""The files a user cites and contributes from stay in step with the code: the license
setup.cfg declares, the version CITATION.bib gives, the commands CONTRIBUTING says CI
runs, and the model pages (their generated sections, search spaces and links)."""

import configparser
import re

import pytest
from conftest import REPO_DIR

import recbole_ssl


def test_license_is_the_one_setup_declares():
    setup = configparser.ConfigParser()
    setup.read(REPO_DIR / "setup.cfg")
    assert setup["metadata"]["license"] == "MIT"
    assert (REPO_DIR / "LICENSE").read_text().startswith("MIT License")


def test_citation_gives_this_version_and_every_models_paper():
    bib = (REPO_DIR / "CITATION.bib").read_text()
    assert re.search(
        r"version\s*=\s*\{" + re.escape(recbole_ssl.__version__) + r"\}", bib
    )
    for title in (
        "Self-Attentive Sequential Recommendation",  # SASRec
        "Contrastive Learning for Sequential Recommendation",  # CL4SRec
        "Contrastive Self-supervised Sequential Recommendation with Robust Augmentation",
        "Intent Contrastive Learning for Sequential Recommendation",
        "Disentangled Self-Supervision in Sequential Recommenders",
        "Memory Augmented Multi-Instance Contrastive Predictive Coding",
        "Self-Supervised Learning for Sequential Recommendation with Mutual Information",
    ):
        assert title in bib, title


def test_contributing_lists_what_ci_runs():
    ci = [
        line.strip()
        for line in (REPO_DIR / ".ci" / "run").read_text().splitlines()
        if line.strip()
        and not line.lstrip().startswith(
            ("#", "set ", "cd ", "venv=", "python3.11 -m venv", "source")
        )
    ]
    contributing = (REPO_DIR / "CONTRIBUTING.md").read_text()
    block = re.search(
        r"## The checks CI runs\n.*?```bash\n(.*?)\n```", contributing, re.S
    )
    listed = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    assert listed == ci


# ---------------------------------------------------------------- model pages

MODELS = ("SASRec", "CL4SRec", "CoSeRec", "ICLRec", "S3Rec", "DSSRec", "MMInfoRec")


def test_every_model_has_a_page_with_its_generated_sections_and_the_readme_links_it():
    from recbole_ssl.model_pages import model_pages

    pages = model_pages(REPO_DIR / "docs" / "models")
    assert sorted(pages) == sorted(MODELS)
    readme = (REPO_DIR / "README.md").read_text()
    for model, path in pages.items():
        text = open(path).read()
        for section in ("docstring", "params", "amazon-beauty:results"):
            assert f"<!-- report:begin {section} -->" in text, (model, section)
        assert f"(docs/models/{model}.md)" in readme
    assert len(readme.splitlines()) < 200


def test_each_search_space_is_one_recbole_reads_over_keys_the_model_knows():
    from recbole.trainer.hyper_tuning import HyperTuning

    from recbole_ssl.model_pages import HYPER_DIR, hyper_ranges, params_section

    for model in MODELS:
        path = HYPER_DIR / f"{model}.test"
        space = HyperTuning._build_space_from_file(str(path))
        assert list(space) == list(hyper_ranges(path)), model
        table = params_section(model)
        for key in space:  # a tuned key is a row of the table with its range
            (row,) = [r for r in table.splitlines() if r.startswith(f"| `{key}` |")]
            assert row.endswith(f"| `{hyper_ranges(path)[key]}` |"), row


def test_params_table_by_hand(tmp_path, monkeypatch):
    from recbole_ssl import model_pages

    for name in ("model", "presets", "hyper"):
        (tmp_path / name).mkdir()
    (tmp_path / "model" / "Toy.yaml").write_text(
        "# Toy\nn_layers: 2                # (int) Layers.\n"
        "cl_weight: 0.1   # (float) Weight | of the loss.\nflag: ~\n"
    )
    (tmp_path / "presets" / "Toy-paper.yaml").write_text(
        "cl_weight: 0.5   # paper: Eq. 3\nlearning_rate: 0.01  # script: main.py\n"
    )
    (tmp_path / "hyper" / "Toy.test").write_text("cl_weight choice [0.1, 0.2]\n\n")
    monkeypatch.setattr(model_pages, "MODEL_DIR", tmp_path / "model")
    monkeypatch.setattr(model_pages, "PRESETS_DIR", tmp_path / "presets")
    monkeypatch.setattr(model_pages, "HYPER_DIR", tmp_path / "hyper")
    rows = model_pages.params_section("Toy").splitlines()[2:6]
    assert rows == [
        "| `n_layers` | int | `2` | Layers. |  |  |",
        "| `cl_weight` | float | `0.1` | Weight \\| of the loss. | `0.5` (paper: Eq. 3) "
        "| `choice [0.1,0.2]` |",
        "| `flag` |  | `~` |  |  |  |",
        "| `learning_rate` | float | `0.001` | RecBole / plugin-wide key (overall.yaml) "
        "| `0.01` (script: main.py) |  |",
    ]
    (tmp_path / "hyper" / "Toy.test").write_text("# tune it\n")
    with pytest.raises(model_pages.ModelPageError, match=r"Toy.test, line 1: expected"):
        model_pages.params_section("Toy")
    (tmp_path / "hyper" / "Toy.test").write_text("not_a_key choice [1,2]\n")
    with pytest.raises(model_pages.ModelPageError, match="'not_a_key' is neither"):
        model_pages.params_section("Toy")


@pytest.mark.parametrize("model", MODELS)
def test_no_rst_double_backquote_is_left_in_a_model_page(model):
    """A ````code```` span that runs onto the next line of the docstring is still one
    markdown span (it had left a stray ````` in MMInfoRec's page)."""
    from recbole_ssl.model_pages import docstring_section

    assert "``" not in docstring_section(model)


def test_docstring_section_turns_rst_into_markdown():
    from recbole_ssl.model_pages import class_docstring, docstring_section

    text = docstring_section("CoSeRec")
    assert "``" not in text and ":mod:" not in text and ":class:" not in text
    assert "\n* `reorder` uses `reorder_ratio`;" in text  # a NOTE bullet, unindented
    assert "`recbole_ssl.data.correlation`" in text
    # nothing lost: the same words as the docstring
    assert re.sub(r"[`:*\s]|mod|class", "", text) == re.sub(
        r"[`:*\s]|mod|class", "", class_docstring("CoSeRec")
    )


def test_every_relative_link_of_the_docs_resolves():
    pages = [REPO_DIR / "README.md", REPO_DIR / "CONTRIBUTING.md"]
    pages += sorted((REPO_DIR / "docs").rglob("*.md"))
    pages += sorted((REPO_DIR / "results").glob("*.md"))
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"(https?:|mailto:|#)", target):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(REPO_DIR)}: {target}")
    assert not broken, broken
