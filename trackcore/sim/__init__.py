"""Simulation: particle sources, transport through the detector, digitisation, noise."""
from . import pdg
from .particles import b_hadron_decays, combine, jets, minimum_bias, particle_gun, read_particle_table

__all__ = ["pdg", "b_hadron_decays", "combine", "jets", "minimum_bias", "particle_gun", "read_particle_table"]
