"""See backpropagation on your own graph: extract it, draw it, step through it.

>>> import gradwell as gw
>>> x = gw.tensor(3.0, requires_grad=True)
>>> g = gw.viz.graph(gw.tanh(x) * x)
>>> len(g.nodes), len(g.edges)
(3, 3)
>>> print(g.to_dot())  # doctest: +ELLIPSIS
digraph gradwell {
...
"""

from .explain import explain
from .graph import Edge, Graph, Node, Trace, graph, trace
from .layout import Box, Layout, layered_layout
from .neurons import scalar_mlp

__all__ = [
    "Box",
    "Edge",
    "Graph",
    "Layout",
    "Node",
    "Trace",
    "explain",
    "graph",
    "layered_layout",
    "scalar_mlp",
    "trace",
]
