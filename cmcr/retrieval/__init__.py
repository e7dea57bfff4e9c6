"""Searching in a space: galleries of embedded items (`gallery`), queries of any modality and
zero-shot classification (`search`)."""
