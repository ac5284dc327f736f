"""Decide: voting across frames, turning readings into plate events."""
