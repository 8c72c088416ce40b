"""Evolving GAN architectures (Neurales / COEGAN style), as pure torch/numpy code.

- :mod:`raygan.arch.genome`: the genome (blocks, optimizers) and its string encoding.
- :mod:`raygan.arch.build`: the generator and discriminator a genome describes.
- :mod:`raygan.arch.bounds`: the limits of a search, and the check that a genome keeps them.
- :mod:`raygan.arch.variation`: random genomes, mutations, weight inheritance.
- :mod:`raygan.arch.elitism`: the elitist selection and refill step.
"""
