"""Data in: decoding and validating media (`media`); the on-disk feature memories (`memory_format`,
`features`, `feature_writer`) and the connection table read from them (`connections`); extraction of
raw files into them, from the sources (`sources`: folders and text files, `text_files`, or Hub
datasets, `hub_uri`, `hub_sources`, `hub_rows`, limited and subsampled by `selection`) through the
fingerprinted plan (`plan`) and the sharded, resumable embedding (`extract`) to the merge (`merge`);
Hub datasets as local folders (`hub_export`); the built-in text corpus (`corpus`)."""
