"""The plugin's trainers; the lookups find ``<Model>Trainer`` here first."""

from recbole_ssl.trainer.contrastive import (
    CL4SRecTrainer,
    ContrastiveTrainer,
    CoSeRecTrainer,
)
from recbole_ssl.trainer.trainer import PluginTrainerMixin, Trainer, with_plugin_fixes

__all__ = [
    "CL4SRecTrainer",
    "CoSeRecTrainer",
    "ContrastiveTrainer",
    "PluginTrainerMixin",
    "Trainer",
    "with_plugin_fixes",
]
