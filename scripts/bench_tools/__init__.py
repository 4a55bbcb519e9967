"""Helpers of scripts/bench.py: the hello-world floor, wrk, socket clients."""
