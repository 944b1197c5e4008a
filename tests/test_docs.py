"""The files a user cites and contributes from stay in step with the code: the license
setup.cfg declares, the version CITATION.bib gives, the commands CONTRIBUTING says CI
runs."""

import configparser
import re

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
