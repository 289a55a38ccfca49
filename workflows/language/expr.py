"""A small, safe, deterministic expression language for `if:` and `auto_approve_if:`.

Grammar: literals (numbers, 'strings', "strings", true, false, null, [lists]), dotted paths
(`steps.build.output.items.0`), comparisons (== != < <= > >=), `in`, `not in`, `and`, `or`, `not`,
parentheses, and the functions len(), lower(), upper(), contains(), startswith(). No attribute
access on Python objects, no calls other than those, no `eval`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workflows.language.limits import MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, MAX_NUMBER_CHARS

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)|(?P<name>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*))"
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "contains": lambda c, x: x in c,
    "startswith": lambda s, p: str(s).startswith(str(p)),
}


class ExpressionError(ValueError):
    """The expression is malformed or cannot be evaluated; the message says where."""


@dataclass(frozen=True)
class Node:
    kind: str  # lit | path | not | and | or | cmp | call | list
    value: Any = None
    args: tuple[Node, ...] = ()


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(
                f"unexpected character at position {pos}: {text[pos : pos + 10]!r}"
            )
        kind = str(m.lastgroup)  # every alternative of _TOKEN is a named group
        value = m.group(kind)
        if kind == "name" and value in _KEYWORDS:
            kind = "kw"
        tokens.append((kind, value))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_EXPRESSION_CHARS:
            raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        # Open or_()/not_() calls: the parser recurses once per nesting level, so the bound keeps
        # it (and everything that walks the tree) far from Python's recursion limit.
        self.depth = 0

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_EXPRESSION_DEPTH} levels")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            want = f"{value!r}" if value else "more input"
            got = f"{tok[1]!r}" if tok else "end of expression"
            raise ExpressionError(f"expected {want}, got {got} in {self.text!r}")
        self.i += 1
        return tok

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1] == value

    def parse(self) -> Node:
        if not self.tokens:
            raise ExpressionError("empty expression")
        node = self.or_()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in {self.text!r}")  # type: ignore[index]
        if _height(node) > MAX_EXPRESSION_DEPTH:
            # A long chain of and/or builds a deep tree without nesting in the text.
            raise ExpressionError(f"expression nested deeper than {MAX_EXPRESSION_DEPTH} levels")
        return node

    def or_(self) -> Node:
        self.nest()
        node = self.and_()
        while self.at("or"):
            self.take()
            node = Node("or", args=(node, self.and_()))
        self.depth -= 1
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.at("and"):
            self.take()
            node = Node("and", args=(node, self.not_()))
        return node

    def not_(self) -> Node:
        if self.at("not"):
            self.take()
            self.nest()
            node = Node("not", args=(self.not_(),))
            self.depth -= 1
            return node
        return self.cmp()

    def cmp(self) -> Node:
        left = self.atom()
        tok = self.peek()
        if tok and tok[1] in ("==", "!=", "<", "<=", ">", ">=", "in"):
            self.take()
            return Node("cmp", tok[1], (left, self.atom()))
        if (
            tok
            and tok[1] == "not"
            and self.i + 1 < len(self.tokens)
            and self.tokens[self.i + 1][1] == "in"
        ):
            self.take()
            self.take()
            return Node("cmp", "not in", (left, self.atom()))
        return left

    def atom(self) -> Node:
        kind, value = self.take()
        if value == "(":
            node = self.or_()
            self.take(")")
            return node
        if value == "[":
            return Node("list", args=self.items("]"))
        if kind == "num":
            if len(value) > MAX_NUMBER_CHARS:
                raise ExpressionError(f"number longer than {MAX_NUMBER_CHARS} characters")
            return Node("lit", float(value) if "." in value else int(value))
        if kind == "str":
            return Node("lit", _unquote(value))
        if kind == "kw" and value in ("true", "false", "null"):
            return Node("lit", {"true": True, "false": False, "null": None}[value])
        if kind == "name":
            if self.at("("):
                if value not in FUNCTIONS:
                    raise ExpressionError(
                        f"unknown function {value!r} (known: {', '.join(sorted(FUNCTIONS))})"
                    )
                self.i += 1  # the "(" just seen
                return Node("call", value, self.items(")"))
            return Node("path", value)
        raise ExpressionError(f"unexpected {value!r} in {self.text!r}")

    def items(self, close: str) -> tuple[Node, ...]:
        """Comma-separated expressions up to `close`, which is consumed."""
        out: list[Node] = []
        while not self.at(close):
            out.append(self.or_())
            if not self.at(close):
                self.take(",")
        self.i += 1  # the `close` that ended the loop
        return tuple(out)


def _height(root: Node) -> int:
    """Levels of the tree, counted without recursion."""
    height, todo = 0, [(root, 1)]
    while todo:
        node, level = todo.pop()
        height = max(height, level)
        todo.extend((a, level + 1) for a in node.args)
    return height


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def parse(text: str) -> Node:
    """Parse an expression; raises ExpressionError naming the problem."""
    return _Parser(text).parse()


def truthy(value: Any) -> bool:
    """Whether a condition's value lets a step run: null, false, 0, '' and empty lists and
    objects do not; anything else does."""
    return bool(value)


def paths(node: Node) -> list[str]:
    """Every dotted path the expression reads, for validation of references."""
    if node.kind == "path":
        return [node.value]
    return [p for a in node.args for p in paths(a)]


def evaluate(node: Node, lookup: Callable[[str], Any]) -> Any:
    """Evaluate with `lookup(path)` giving a path's value (None when absent)."""
    k = node.kind
    if k == "lit":
        return node.value
    if k == "path":
        return lookup(node.value)
    if k == "list":
        return [evaluate(a, lookup) for a in node.args]
    if k == "not":
        return not evaluate(node.args[0], lookup)
    if k == "and":
        return bool(evaluate(node.args[0], lookup)) and bool(evaluate(node.args[1], lookup))
    if k == "or":
        return bool(evaluate(node.args[0], lookup)) or bool(evaluate(node.args[1], lookup))
    if k == "call":
        values = [evaluate(a, lookup) for a in node.args]
        try:
            return FUNCTIONS[node.value](*values)
        except (TypeError, ValueError) as err:
            raise ExpressionError(f"{node.value}() failed: {err}") from None
    left, right = (evaluate(a, lookup) for a in node.args)
    return _compare(node.value, left, right)


def _compare(op: str, left: Any, right: Any) -> bool:
    try:
        if op == "==":
            return bool(left == right)
        if op == "!=":
            return bool(left != right)
        if op == "in":
            return left in right
        if op == "not in":
            return left not in right
        if left is None or right is None:
            return False
        result = {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[
            op
        ]
        return bool(result)
    except TypeError:
        raise ExpressionError(
            f"cannot compare {type(left).__name__} {op} {type(right).__name__}"
        ) from None
