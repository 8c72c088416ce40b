"""raygan's version, in a leaf module: checkpoints and exports record it without importing the
package's public API (`raygan/__init__.py`), which sits above everything else."""

__version__ = "0.1.0"
