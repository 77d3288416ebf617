"""Seed classifier plugin: labels triplet seeds good / medium / bad before track finding.

Entry point ``seed_classifier = "plugins.seed_classifier.plugin"``; see ``README.md``.
"""
