"""Asterisk Manager Interface: framing, protocol, client and the call tracker."""
