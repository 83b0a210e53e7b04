"""nb2pipe: turn a Jupyter notebook into a reproducible, version-controlled pipeline."""

__version__ = "0.1.0"
