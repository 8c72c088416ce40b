"""Metrics: the registry that computes them (`registry`), toy-mixture coverage (`toy`), image
FID/TVD/IS (`image`) and the classifiers trained as feature extractors (`classifier`); their
names, directions and the data they apply to are the config's (`raygan.config.catalog`)."""
