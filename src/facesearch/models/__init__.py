"""Model weights (registry, verified cache) and the sessions that run them."""
