"""edge_sed."""
