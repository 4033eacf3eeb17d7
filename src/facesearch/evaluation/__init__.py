"""Accuracy measured on labelled photos: metrics, protocols, reports and plots."""
