"""Depth processing: range clipping today; learned restoration and noise grafting plug in here."""
from .processing import DEPTH_MODES, DepthProcessor

__all__ = ["DEPTH_MODES", "DepthProcessor"]
