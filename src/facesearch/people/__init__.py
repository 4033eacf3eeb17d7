"""People: faces grouped into persons (clustering, its measurement, the operations on persons)."""
