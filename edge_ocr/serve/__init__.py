"""Serve: the HTTP API, still-image reading for /api/ocr and the live-view overlay."""
