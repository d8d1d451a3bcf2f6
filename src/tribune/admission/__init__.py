"""Letting listeners in: signed listener tokens and rate limits (waiting room later)."""
