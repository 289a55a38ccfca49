"""The dependency graph of a definition's steps: cycles and what each step transitively needs.
Iterative throughout: a chain of thousands of steps must not overflow Python's stack."""

from __future__ import annotations


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One dependency cycle as a closed path (a -> b -> a), or None. Depth-first without
    recursion: a chain of 1,200 steps listed last-first once overflowed Python's stack."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if root in state:
            continue
        path, branches = [root], [iter(graph.get(root, []))]
        state[root] = 1
        while branches:
            nxt = next(branches[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                branches.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                branches.append(iter(graph.get(nxt, [])))
    return None


def upstream(needs_of: dict[str, list[str]]) -> dict[str, set[str]]:
    """For each step, every step it transitively needs (itself too when on a cycle). Without
    recursion, each group of steps that need each other in turn handled once, ancestors kept as
    bit sets: linear in the edges, where the recursive version overflowed on long chains."""
    needs = {sid: [n for n in ns if n != sid] for sid, ns in needs_of.items()}
    graph = {sid: [n for n in ns if n in needs] for sid, ns in needs.items()}
    bit = {sid: 1 << i for i, sid in enumerate(graph)}
    group_of: dict[str, int] = {}
    group_bits: list[int] = []
    for number, group in enumerate(_groups(graph)):
        bits = 0
        for member in group:
            group_of[member] = number
        for member in group:
            for n in graph[member]:
                bits |= bit[n] | (group_bits[group_of[n]] if group_of[n] != number else 0)
        group_bits.append(bits)
    ids = list(graph)
    # bin() lists the bits as text, lowest last: one pass per step instead of a shift per bit.
    return {sid: _members(ids, group_bits[group_of[sid]]) for sid in graph}


def _members(ids: list[str], bits: int) -> set[str]:
    return {ids[i] for i, b in enumerate(reversed(bin(bits)[2:])) if b == "1"}


def _groups(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan's algorithm, iterative), each listed after every
    component it needs."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in graph:
        if root in index:
            continue
        enter(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    enter(nxt)
                    work.append((nxt, iter(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while not group or group[-1] != node:
                    group.append(stack.pop())
                    on_stack.discard(group[-1])
                found.append(group)
    return found
