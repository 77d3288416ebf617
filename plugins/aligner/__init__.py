"""Aligner plugin: module alignment with a MillePede-style global fit and an ML (PyTorch/Adam) aligner.

Entry point ``aligner = "plugins.aligner.plugin"``; see ``README.md``.
"""
