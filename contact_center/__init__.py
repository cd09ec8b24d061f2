"""Contact center CTI middleware: the daemon."""

__version__ = "0.1.0"
