"""The plugin's trainers; the lookups find ``<Model>Trainer`` here first."""

from recbole_ssl.trainer.contrastive import (
    CL4SRecTrainer,
    ContrastiveTrainer,
    CoSeRecTrainer,
    ICLRecTrainer,
)
from recbole_ssl.trainer.s3rec import S3RecTrainer
from recbole_ssl.trainer.trainer import PluginTrainerMixin, Trainer, with_plugin_fixes

__all__ = [
    "CL4SRecTrainer",
    "CoSeRecTrainer",
    "ContrastiveTrainer",
    "ICLRecTrainer",
    "PluginTrainerMixin",
    "S3RecTrainer",
    "Trainer",
    "with_plugin_fixes",
]
