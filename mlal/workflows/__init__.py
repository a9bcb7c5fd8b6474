"""Workflows built on mlal models (any ASE calculator where it makes sense): phonons."""
