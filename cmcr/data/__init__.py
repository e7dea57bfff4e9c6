"""Data in: decoding and validating media (`media`); the on-disk feature memories (`memory_format`,
`features`, `feature_writer`) and the connection table read from them (`connections`); extraction of
raw files into them, from the sources (`sources`) through the fingerprinted plan (`plan`) and the
sharded, resumable embedding (`extract`) to the merge (`merge`); the built-in text corpus (`corpus`)."""
