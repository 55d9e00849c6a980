"""Data: folder/CSV data sets and their group-wise splits, the synthetic generator, mixtures
of clips over a background bed, and labelled evaluation streams."""
