"""Speed benchmarks (`python -m benchmarks`) and the synthetic world's quality benchmark, outside
the library: they patch and time its internals, which the library itself never does."""
