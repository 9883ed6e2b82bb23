"""Conformance checks for models, losses and datasets (:mod:`zoo.testing` is the public facade)."""
