"""Tribune: live audio rooms, self-hostable.

A sound travels microphone -> ``stage`` -> ``broadcast`` -> ``edge`` -> listener; the
control plane around it lives in ``rooms`` (the pure domain), ``service`` (the domain
applied to storage), ``api`` (HTTP), ``store`` (SQL), ``presence``, ``admission`` and
``events``.
"""

__version__ = "0.1.0"
