"""Retraining: the dataset snapshot, the trainer and its gates, the registry, the launchers."""
