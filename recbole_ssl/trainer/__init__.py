"""The plugin's trainers; the lookups find ``<Model>Trainer`` here first."""

from recbole_ssl.trainer.trainer import PluginTrainerMixin, Trainer, with_plugin_fixes

__all__ = ["PluginTrainerMixin", "Trainer", "with_plugin_fixes"]
