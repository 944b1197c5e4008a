"""The plugin's models, one per file; the lookups find them here by class name."""

from recbole_ssl.model.sasrec import SASRec

__all__ = ["SASRec"]
