"""First-party trackcore plugins (registered through the trackcore entry-point group)."""
