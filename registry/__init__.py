"""The bundled pretrained registry (``index.json`` + weight files), shipped as package data."""
