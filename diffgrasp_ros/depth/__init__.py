"""Depth processing: range clipping, learned restoration (``restoration``); noise grafting plugs in here."""
from .processing import DEPTH_MODES, DepthProcessor

__all__ = ["DEPTH_MODES", "DepthProcessor"]
