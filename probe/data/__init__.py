"""Data files shipped with the package (fingerprints)."""
