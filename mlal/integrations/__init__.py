"""Hosts that run an exported mlal model: LAMMPS (plugin) and helpers."""
