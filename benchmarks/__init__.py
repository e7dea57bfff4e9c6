"""Speed benchmarks (`python -m benchmarks`: `benchmarks.run` and one module per section) and the
synthetic world's quality benchmark (`python -m benchmarks.synthetic`), kept outside the library:
they measure it, and nothing the library serves depends on them."""
