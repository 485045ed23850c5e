"""Solver families, one module each: `greedy` (EHGP), `exact` (brute force)."""
