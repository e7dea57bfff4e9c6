"""Data in: decoding and validating media (`media`), the on-disk feature memories (`features`),
sharded extraction of raw files into them (`extract`) and the built-in text corpus (`corpus`)."""
