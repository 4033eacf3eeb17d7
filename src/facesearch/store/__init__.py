"""The catalog: the one place that holds state and speaks SQL."""
