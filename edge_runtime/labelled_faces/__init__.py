"""Labelled face data sets: FER2013 (folder-per-class tree or fer2013.csv), the FER+ votes, and the
faces every accuracy report scores, per label set.

Shared by ``train``, ``convert`` and ``benchmarks`` without TensorFlow; ``import edge_runtime``
does not load it.
"""
