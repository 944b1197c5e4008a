"""recbole-ssl: self-supervised sequential recommenders as a RecBole plugin."""

__version__ = "0.1.0"
