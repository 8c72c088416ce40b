"""Metrics: names and directions (`catalog`, no torch), the registry that computes them
(`registry`), toy-mixture coverage (`toy`), image FID/TVD/IS (`image`) and the classifiers
trained as feature extractors (`classifier`)."""
