"""The `contact-center` command line: `entry` parses it, one module runs each command group."""

from contact_center.cli.entry import main

__all__ = ["main"]
