"""Capture: frame sources, the frame record, motion gate, ROI, plate geometry and image decoding."""
