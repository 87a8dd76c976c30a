"""The ``calculator`` tool's arithmetic: parsed with ``ast``, evaluated node by node, no ``eval``.

Only numbers, ``+ - * / // % **``, unary ``-``/``+``, parentheses, ``pi``, ``e`` and the
functions abs, max, min, round and sqrt are evaluated; every other node (a name, an attribute,
a call of anything else, a string, a comparison...) is refused before anything runs. Sizes are
capped so that no short expression can exhaust memory or time: ``**`` refuses exponents above
``MAX_EXPONENT`` and any result whose integer would exceed ``MAX_INT_BITS`` bits, and a float
result must be finite. Every refusal is a ``CalculatorError`` whose message says what was wrong.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_EXPONENT", "MAX_EXPRESSION_CHARS", "MAX_INT_BITS", "CalculatorError", "calculate"]


class CalculatorError(ValueError):
    """An expression the calculator refuses or cannot compute."""


MAX_EXPRESSION_CHARS = 1000
MAX_EXPONENT = 1000  # |exponent| of **
MAX_INT_BITS = 10_000  # ~3,000 decimal digits: no result may be bigger
MAX_ROUND_DIGITS = 100

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_REFUSED: dict[type[ast.AST], str] = {
    ast.Compare: "comparisons are",
    ast.BoolOp: "boolean operators are",
    ast.IfExp: "conditional expressions are",
    ast.Lambda: "lambdas are",
    ast.Subscript: "subscripts are",
    ast.List: "lists are",
    ast.Tuple: "tuples are",
    ast.Dict: "dicts are",
    ast.Set: "sets are",
    ast.NamedExpr: "assignments are",
    ast.JoinedStr: "strings are",
}


def _round(x: float, ndigits: int | None = None) -> float:
    if ndigits is not None and abs(ndigits) > MAX_ROUND_DIGITS:
        raise CalculatorError(f"round(): ndigits must be within ±{MAX_ROUND_DIGITS}")
    return round(x, ndigits)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "max": max,
    "min": min,
    "round": _round,
    "sqrt": math.sqrt,
}


def calculate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely; ``CalculatorError`` says what was wrong.

    Allowed: int and float literals, ``+ - * / // % **``, unary ``-``/``+``, parentheses,
    ``pi``, ``e`` and the functions abs, max, min, round, sqrt. Anything else (names,
    attributes, other calls, strings, comparisons...) is refused before it runs; exponents
    above ``MAX_EXPONENT`` and results above ``MAX_INT_BITS`` bits or beyond float range are
    refused too, so no expression can exhaust memory or time.
    """
    if not isinstance(expression, str):
        raise CalculatorError("the expression must be a string")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression too long (over {MAX_EXPRESSION_CHARS} characters)")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"syntax error: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise CalculatorError("expression is too deeply nested") from None
    try:
        return _checked(_evaluate(tree.body))
    except RecursionError:
        raise CalculatorError("expression is too deeply nested") from None


def _checked(value: Any) -> int | float:
    if isinstance(value, complex):
        raise CalculatorError("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result too large")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError("result too large")
    return value  # type: ignore[no-any-return]


def _evaluate(node: ast.AST) -> int | float:
    match node:
        case ast.Constant(value=bool() | str() | bytes() | complex() | None as value):
            raise CalculatorError(f"only numbers are allowed, not {value!r}")
        case ast.Constant(value=int() | float() as value):
            return value
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            return _binary(op, _evaluate(left), _evaluate(right))
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            return _checked(_UNARY[type(op)](_evaluate(operand)))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS:
            if any(isinstance(arg, ast.Starred) for arg in args):
                raise CalculatorError("argument unpacking is not allowed")
            values = [_evaluate(arg) for arg in args]
            try:
                return _checked(_FUNCTIONS[name](*values))
            except CalculatorError:
                raise
            except (TypeError, ValueError, OverflowError) as exc:
                raise CalculatorError(f"{name}(): {exc}") from None
        case ast.Call(func=ast.Name(id=name)):
            allowed = ", ".join(sorted(_FUNCTIONS))
            raise CalculatorError(f"function {name!r} is not allowed (allowed: {allowed})")
        case ast.Call(func=ast.Attribute()):
            raise CalculatorError("attribute access is not allowed")
        case ast.Call():
            raise CalculatorError("only calls of the allowed functions by name are allowed")
        case ast.Name(id=name) if name in _CONSTANTS:
            return _CONSTANTS[name]
        case ast.Name(id=name):
            raise CalculatorError(f"unknown name {name!r} (only numbers, pi and e)")
        case ast.Attribute():
            raise CalculatorError("attribute access is not allowed")
        case ast.BinOp(op=op) | ast.UnaryOp(op=op):
            raise CalculatorError(f"operator {type(op).__name__} is not allowed")
    what = _REFUSED.get(type(node), type(node).__name__)
    raise CalculatorError(f"{what} not allowed in an arithmetic expression")


def _binary(op: ast.operator, left: int | float, right: int | float) -> int | float:
    if isinstance(op, ast.Pow):
        if abs(right) > MAX_EXPONENT:
            raise CalculatorError(f"exponent too large (|exponent| > {MAX_EXPONENT})")
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            if abs(left).bit_length() * right > MAX_INT_BITS:
                raise CalculatorError("result too large")
    try:
        return _checked(_BINARY[type(op)](left, right))
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("result too large") from None
