"""Counting listeners: who was seen in the last window, and who was ever seen."""
