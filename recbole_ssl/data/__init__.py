"""Data: the sequential dataset with the two training regimes, history-masked
evaluation loaders, and the converter to RecBole atomic files."""
