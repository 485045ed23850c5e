"""Solver families, one module each, registered by name in `mewcp.solve`.

* `greedy`: ``ehgp`` (greedy peeling, SIRFP Algorithm 1) and `ehgp_order`;
* `local_search`: ``local_search``, ``tabu`` and ``memetic``;
* `ilp`: ``ilp`` (an integer program through PuLP/HiGHS, CBC or SciPy);
* `brute`: ``brute`` (exhaustive enumeration for tiny instances, the test oracle);
* `base`: the contract every solver follows (`Deadline` in, `SolverOutput` out).

Every solver takes a validated `Problem`, ``k``, ``exact``, a `Deadline` and a
seed, checks the deadline between bounded kernel calls, and returns raw vertex
indices that `mewcp.solve` certifies and re-weighs.
"""
