"""Collators config.DATA names."""
