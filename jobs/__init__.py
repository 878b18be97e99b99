"""Thin entry points, one per stage, plus ``pipeline`` which runs them in order."""
