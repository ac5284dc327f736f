"""Training, export, evaluation and demo tools; run each from the repository root as
``python -m tools.NAME`` (the ``train`` extra for the ones that need torch)."""
