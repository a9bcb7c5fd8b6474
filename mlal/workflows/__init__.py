"""Workflows built on mlal models: phonons (phonopy), convex-hull screening of binary alloys
(superstructure enumeration, active learning); each works with any ASE calculator where it can."""
