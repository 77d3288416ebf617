"""Cluster splitter plugin: splits merged pixel clusters (dense jet cores) into one hit per particle.

Entry point ``cluster_splitter = "plugins.cluster_splitter.plugin"``; see ``README.md``.
"""
