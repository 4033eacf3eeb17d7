"""Vector indexes behind one small interface."""
