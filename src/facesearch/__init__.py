"""facesearch: self-hosted face search over declared photo collections."""

__version__ = "0.1.0"
