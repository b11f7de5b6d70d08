"""The benchmark suite (`make bench`): real servers, wrk, ratios in RESULTS.md. Not run by pytest."""
