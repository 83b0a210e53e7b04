"""nb2pipe: turn a Jupyter notebook into a reproducible, version-controlled pipeline."""

__version__ = "0.1.0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt JupyterLab extension lives (for `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "nb2pipe"}]
