"""Searching in a space: galleries of embedded items (`gallery`), queries of any modality
(`search`) and zero-shot classification (`zeroshot`)."""
