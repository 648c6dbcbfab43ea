"""Evaluation of generators (feature extractors and metrics): the evaluation issue fills it."""
