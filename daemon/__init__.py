"""Switchboard: the coordination daemon for Amazon Connect softphones embedded in Zendesk tabs."""

__version__ = "0.1.0"
