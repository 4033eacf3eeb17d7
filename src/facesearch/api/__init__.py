"""The HTTP front door: REST API and web pages over the Engine."""
