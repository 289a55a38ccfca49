"""Bounded JMESPath: evaluation on a worker thread, stopped when it exceeds its time or size
budget, so a runaway expression fails its own step instead of stalling the worker."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import jmespath
from jmespath import visitor
from jmespath.exceptions import JMESPathError

if TYPE_CHECKING:
    from jmespath.visitor import _TreeNode

# CPU-heavy pure tools (data.transform, openapi.validate, package.inspect) share these threads,
# not the default pool that file I/O uses; more than two would only contend for the GIL with the
# event loop.
BOUNDED_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stepgate-bounded")
# Everything built on the way may add up to this many times the size limit of one value.
_BUILT_FACTOR = 4
# Rough JSON sizes of scalars: numbers are short, `true`/`false`/`null` at most 5 bytes.
_SCALAR = 8


class BudgetExceeded(Exception):
    """The evaluation went over a budget; the message names it and its setting."""


class ExpressionInvalid(Exception):
    """The expression does not parse; the message is the parser's."""


def _over_time(timeout_s: float) -> BudgetExceeded:
    return BudgetExceeded(
        f"the expression ran longer than its {timeout_s:g}s budget (STEPGATE_TRANSFORM_TIMEOUT_S)"
    )


_SIZE_SETTING = "STEPGATE_TRANSFORM_MAX_OUTPUT_BYTES"


def _over_size(what: str, limit: int, input_sized: bool = True) -> BudgetExceeded:
    whose = (
        f"{_SIZE_SETTING}, or the input's own size when larger" if input_sized else _SIZE_SETTING
    )
    return BudgetExceeded(f"the expression {what} {limit} bytes as JSON, over its budget ({whose})")


class _Budget:
    """Measures every value the interpreter produces as its JSON size, memoised per container
    so shared sub-values (`[@, @]` builds a list holding one value twice) cost nothing to
    measure again while still counting twice, as JSON would write them."""

    def __init__(self, timeout_s: float, value_limit: int, cancelled: threading.Event) -> None:
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.value_limit = value_limit
        self.built_limit = value_limit * _BUILT_FACTOR
        self.built = 0
        self.cancelled = cancelled
        self._sizes: dict[int, tuple[Any, int]] = {}  # id -> (the value kept alive, its size)

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise _over_time(self.timeout_s)
        if self.cancelled.is_set():
            raise BudgetExceeded("the step was cancelled")

    def _add_built(self, amount: int) -> None:
        self.built += amount
        if self.built > self.built_limit:
            raise _over_size("built values adding up to more than", self.built_limit)

    def measure(self, value: Any) -> int:
        if isinstance(value, str):
            return len(value) + 2
        if not isinstance(value, (list, dict)):
            return _SCALAR
        known = self._sizes.get(id(value))
        if known is not None:
            return known[1]
        # Iterative post-order walk: deep data must not hit Python's recursion limit.
        stack: list[tuple[Any, bool]] = [(value, False)]
        while stack:
            node, children_done = stack.pop()
            if id(node) in self._sizes:
                continue
            items = list(node.values()) if isinstance(node, dict) else node
            if not children_done:
                stack.append((node, True))
                stack.extend((c, False) for c in items if isinstance(c, (list, dict)))
                continue
            self.tick()
            size = 2 + len(items) + sum(self._size_of(c) for c in items)
            if isinstance(node, dict):
                size += sum(len(k) + 3 for k in node)
            self._sizes[id(node)] = (node, size)
            self._add_built(len(items) + 1)
        return self._sizes[id(value)][1]

    def _size_of(self, value: Any) -> int:
        if isinstance(value, (list, dict)):
            return self._sizes[id(value)][1]
        return len(value) + 2 if isinstance(value, str) else _SCALAR

    def charge(self, value: Any) -> None:
        """Account for a value the interpreter produced; stop when it is too large."""
        size = self.measure(value)
        if isinstance(value, str):
            self._add_built(len(value))
        if size > self.value_limit:
            raise _over_size("built a value of more than", self.value_limit)


class _BoundedInterpreter(visitor.TreeInterpreter):
    """The stock interpreter, checking the budget before and after every node it visits."""

    def __init__(self, budget: _Budget) -> None:
        super().__init__()
        self._budget = budget

    def visit(self, node: _TreeNode, *args: Any, **kwargs: Any) -> Any:
        self._budget.tick()
        result = super().visit(node, *args, **kwargs)
        self._budget.charge(result)
        return result


_PARSE_LOCK = threading.Lock()  # jmespath's parser cache is not safe across threads


def _evaluate(
    expression: str, data: Any, timeout_s: float, max_bytes: int, cancelled: threading.Event
) -> Any:
    budget = _Budget(timeout_s, max_bytes, cancelled)
    try:
        with _PARSE_LOCK:
            parsed = jmespath.compile(expression)
    except JMESPathError as err:
        raise ExpressionInvalid(str(err)) from None
    # A value may be as large as the input itself (a filter over it), else the output bound.
    budget.value_limit = max(max_bytes, budget.measure(data))
    budget.built_limit = budget.value_limit * _BUILT_FACTOR
    result = _BoundedInterpreter(budget).visit(parsed.parsed, data)
    if budget.measure(result) > max_bytes:
        raise _over_size("returned a value of more than", max_bytes, input_sized=False)
    return result


async def bounded_search(expression: str, data: Any, timeout_s: float, max_bytes: int) -> Any:
    """Evaluate `expression` on `data` off the event loop, within the budgets.

    Raises ExpressionInvalid, BudgetExceeded (naming the budget), jmespath's errors for data
    the expression cannot handle, or RecursionError.
    A cancelled caller stops the evaluation at its next step."""
    cancelled = threading.Event()
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(
        BOUNDED_POOL, _evaluate, expression, data, timeout_s, max_bytes, cancelled
    )
    try:
        return await future
    finally:
        cancelled.set()
