"""mewcp: the cardinality-constrained Maximum Edge Weight Clique Problem in Python.

Find a clique ``C`` of an edge-weighted graph maximising the total weight of its
edges subject to ``|C| == k`` (or ``|C| <= k``); on complete graphs this is the
Maximum Diversity Problem. Start with `solve`; `methods` lists the solvers.
"""

from mewcp.io import read, write
from mewcp.points import from_points
from mewcp.problem import Problem, as_problem
from mewcp.solution import Solution, Status
from mewcp.solve import Method, is_clique, methods, objective, solve
from mewcp.solvers.greedy import PeelingOrder, ehgp_order

__all__ = [
    "Method",
    "PeelingOrder",
    "Problem",
    "Solution",
    "Status",
    "as_problem",
    "ehgp_order",
    "from_points",
    "is_clique",
    "methods",
    "objective",
    "read",
    "solve",
    "write",
]

__version__ = "0.1.0"
