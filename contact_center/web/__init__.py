"""The daemon's HTTP side: route table, handlers, app factory."""
