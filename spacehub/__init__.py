"""spacehub: a self-hosted Spaces platform."""

__version__ = "0.1.0"
