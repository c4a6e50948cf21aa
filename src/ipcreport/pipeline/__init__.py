"""Run settings, cache keys, executors, warm kernels, rendering and publishing."""
