"""raygan: population-based GAN training (spatial coevolution) on Ray."""

__version__ = "0.1.0"
