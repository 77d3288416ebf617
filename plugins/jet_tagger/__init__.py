"""Jet tagger plugin: anti-kt jets (fastjet), Deep Sets b-tagging, jet-image CNN quark/gluon tagging."""
