"""recbole_ssl.paths: where the package's shipped files are, in a clone or installed.

The lowest floor with :mod:`recbole_ssl.errors`: standard library only, imported by the
command line (before torch), the config, the run records and the model pages.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROPERTIES_DIR = PACKAGE_DIR / "properties"
# the models' defaults, the papers' settings (config files), the search spaces
MODEL_DIR = PROPERTIES_DIR / "model"
PRESETS_DIR = PROPERTIES_DIR / "presets"
HYPER_DIR = PROPERTIES_DIR / "hyper"
# the shipped datasets, found from any working folder: inside the package where it was
# installed from a wheel (setup.cfg maps dataset_atomic/ to recbole_ssl/dataset_atomic/),
# else beside it in a clone
SHIPPED_DATA_DIR = next(
    (
        folder
        for folder in (
            PACKAGE_DIR / "dataset_atomic",
            PACKAGE_DIR.parent / "dataset_atomic",
        )
        if folder.is_dir()
    ),
    PACKAGE_DIR.parent / "dataset_atomic",
)
