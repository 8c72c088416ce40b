"""Evolving GAN architectures (Neurales / COEGAN style), as pure torch/numpy code.

- :mod:`raygan.arch.genome`: the genome (blocks, optimizers), its string encoding, the bounds.
- :mod:`raygan.arch.build`: the generator and discriminator a genome describes.
- :mod:`raygan.arch.variation`: random genomes, mutations, weight inheritance.
- :mod:`raygan.arch.elitism`: the elitist selection and refill step.
"""
