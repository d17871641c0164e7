"""A model's forward replayed from CUDA graphs: one capture per input shape, then one launch per batch.

Sliding-window prediction calls the model on batches of one shape (the last batch of a run may be smaller),
so the many small kernels of a FracTAL network can be recorded once and replayed with a single launch,
which removes the CPU's launch cost per kernel (``torch.cuda.CUDAGraph``). The inputs are copied into the
graph's own input tensors before each replay and the outputs are cloned out of the graph's memory after it,
so a caller may keep them while the next batch runs.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import _pytree as pytree

# Shapes seen in one prediction: the full batch, the last batch, and the odd edge strip. Past this, eager.
MAX_GRAPHS = 4
# Runs before a capture: lazy initialisation (cuDNN algorithm search, Triton compilation, allocator pools)
# must happen outside the graph.
WARMUP_RUNS = 3

Context = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]
    output: Any


class GraphedForward:
    """``model(*inputs)`` on CUDA, run from a CUDA graph captured on the first call with each input shape.

    Args:
        model: a module on a CUDA device, in eval mode, whose forward has no host synchronisation (every
            network of the registry).
        context: the context each run happens in (inference mode, autocast); autocast must not cache its
            casts (``cache_enabled=False``): cached weights would live in the graph's memory.
        max_graphs: input shapes captured at most; others run eagerly.

    A capture that fails (an operation that cannot be recorded) warns once and leaves the model eager.
    """

    def __init__(self, model: Callable[..., Any], context: Context, max_graphs: int = MAX_GRAPHS) -> None:
        self.model = model
        self.context = context
        self.max_graphs = max_graphs
        self.graphs: dict[tuple[Any, ...], _Graph] = {}
        self.eager = False  # set when a capture failed
        # One memory pool for every graph: they never run at once and their outputs are cloned out at once,
        # so a second batch shape costs no second set of activations.
        self.pool: Any = None

    def __call__(self, *inputs: torch.Tensor) -> Any:
        key = tuple((t.shape, t.stride(), t.dtype, t.device) for t in inputs)
        graph = self.graphs.get(key)
        if graph is None:
            if self.eager or len(self.graphs) >= self.max_graphs:
                return self._run(inputs)
            captured = self._capture(inputs)
            if captured is None:
                return self._run(inputs)
            graph = self.graphs[key] = captured
        for static, t in zip(graph.inputs, inputs):
            static.copy_(t)
        graph.graph.replay()
        return pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, graph.output)

    def _run(self, inputs: tuple[torch.Tensor, ...]) -> Any:
        with self.context():
            return self.model(*inputs)

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> _Graph | None:
        static = tuple(t.clone() for t in inputs)  # same strides: the graph reads these addresses
        side = torch.cuda.Stream(device=inputs[0].device)
        side.wait_stream(torch.cuda.current_stream(inputs[0].device))
        try:
            with torch.cuda.stream(side):
                for _ in range(WARMUP_RUNS):
                    self._run(static)
            torch.cuda.current_stream(inputs[0].device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: the predictor's reading thread page-locks and copies strips while this one captures.
            with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
                output = self._run(static)
            self.pool = graph.pool() if self.pool is None else self.pool
        except RuntimeError as exc:
            warnings.warn(f"CUDA graph capture failed ({exc}); predicting without CUDA graphs", stacklevel=3)
            self.eager = True
            return None
        return _Graph(graph, static, output)


__all__ = ["MAX_GRAPHS", "GraphedForward"]
