//! Benchmarks live in `benches/`; `bench/run` drives end-to-end runs.
