"""IP → ASN and country databases shipped with the package (see SOURCES.md)."""
