"""Transforms config.DATA names: frames to views, box-aware crops, the fast and device augmentation backends."""
