"""The few PromQL forms the service dashboard uses, evaluated as Prometheus evaluates them, over two
scrapes of a server taken ``seconds`` apart (the range of ``rate`` holding exactly those two).

Forms: a selector ``name{label="v", label!="v", label=~"re"}``; ``rate(selector[range])``;
``sum``/``max`` with ``by (labels)``; ``histogram_quantile(q, vector)``; and ``a / b`` between
vectors of the same labels. Semantics from Prometheus' ``promql/functions.go`` and
``promql/quantile.go`` (``bucketQuantile``); and ``vector > number``, which keeps the series
above the number (an alert's condition); anything else is refused, so a panel using a form this
module does not know fails its test instead of passing unchecked.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from tests.metrics_server import Samples

Labels = frozenset[tuple[str, str]]
Vector = dict[Labels, float]

TOKEN = re.compile(
    r'\s*(?:(=~|!=|[(){}\[\],=/>])|("(?:[^"\\]|\\.)*")|([A-Za-z_:][\w:]*)|(\d+(?:\.\d+)?[smhd]?))'
)


@dataclass(frozen=True)
class Scrapes:
    before: Samples
    after: Samples
    seconds: float


def _tokens(text: str) -> list[str]:
    tokens, at = [], 0
    while at < len(text.rstrip()):
        match = TOKEN.match(text, at)
        if match is None:
            raise ValueError(f"cannot read {text[at:]!r}")
        tokens.append(next(group for group in match.groups() if group is not None))
        at = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ValueError(f"expected {expected!r}, found {token!r}")
        self.at += 1
        return token

    def expression(self) -> Callable[[Scrapes], Vector]:
        left = self.term()
        if self.peek() == "/":
            self.take("/")
            numerator, denominator = left, self.term()
            left = lambda s: _divide(numerator(s), denominator(s))  # noqa: E731
        if self.peek() == ">":
            self.take(">")
            compared, threshold = left, float(self.take())
            return lambda s: {labels: n for labels, n in compared(s).items() if n > threshold}
        return left

    def term(self) -> Callable[[Scrapes], Vector]:
        name = self.take()
        if name in ("sum", "max"):
            by: tuple[str, ...] = ()
            if self.peek() == "by":
                self.take("by")
                by = self.labels()
            self.take("(")
            inner = self.expression()
            self.take(")")
            combine = sum if name == "sum" else max
            return lambda s: _aggregate(inner(s), by, combine)
        if name == "rate":
            self.take("(")
            selector = self.selector(self.take())
            self.take("[")
            self.take()  # the range: both scrapes lie in it
            self.take("]")
            self.take(")")
            return lambda s: _rate(selector(s.before), selector(s.after), s.seconds)
        if name == "histogram_quantile":
            self.take("(")
            quantile = float(self.take())
            self.take(",")
            inner = self.expression()
            self.take(")")
            return lambda s: _histogram_quantile(quantile, inner(s))
        selector = self.selector(name)
        return lambda s: selector(s.after)

    def labels(self) -> tuple[str, ...]:
        self.take("(")
        names = [self.take()]
        while self.peek() == ",":
            self.take(",")
            names.append(self.take())
        self.take(")")
        return tuple(names)

    def selector(self, name: str) -> Callable[[Samples], Vector]:
        matchers: list[tuple[str, str, str]] = []
        if self.peek() == "{":
            self.take("{")
            while True:
                label, op, quoted = self.take(), self.take(), self.take()
                if op not in ("=", "!=", "=~"):
                    raise ValueError(f"matcher operator {op!r}")
                matchers.append((label, op, quoted[1:-1]))
                if self.take() == "}":
                    break

        def select(samples: Samples) -> Vector:
            return {
                labels: number
                for (sample, labels), number in samples.items()
                if sample == name and all(_matches(dict(labels), m) for m in matchers)
            }

        return select


def _matches(labels: dict[str, str], matcher: tuple[str, str, str]) -> bool:
    label, op, wanted = matcher
    have = labels.get(label, "")
    if op == "=":
        return have == wanted
    if op == "!=":
        return have != wanted
    return re.fullmatch(wanted, have) is not None


def _rate(before: Vector, after: Vector, seconds: float) -> Vector:
    # A series needs two samples in the range; none of these counters is reset between the scrapes.
    return {labels: (after[labels] - before[labels]) / seconds for labels in after if labels in before}


def _aggregate(vector: Vector, by: tuple[str, ...], combine: Callable[[list[float]], float]) -> Vector:
    groups: dict[Labels, list[float]] = {}
    for labels, number in vector.items():
        key = frozenset((k, v) for k, v in labels if k in by)
        groups.setdefault(key, []).append(number)
    return {key: combine(numbers) for key, numbers in groups.items()}


def _divide(left: Vector, right: Vector) -> Vector:
    def ratio(a: float, b: float) -> float:
        if b == 0:
            return math.nan if a == 0 else math.copysign(math.inf, a)
        return a / b

    return {labels: ratio(number, right[labels]) for labels, number in left.items() if labels in right}


def _histogram_quantile(quantile: float, vector: Vector) -> Vector:
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for labels, number in vector.items():
        bound = dict(labels)["le"]
        key = frozenset((k, v) for k, v in labels if k != "le")
        groups.setdefault(key, []).append((float(bound), number))
    return {key: _bucket_quantile(quantile, sorted(buckets)) for key, buckets in groups.items()}


def _bucket_quantile(quantile: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' bucketQuantile: linear interpolation inside the bucket holding the rank."""
    if len(buckets) < 2 or buckets[-1][0] != math.inf:
        return math.nan
    observations = buckets[-1][1]
    if observations == 0:
        return math.nan
    rank = quantile * observations
    index = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    if index == len(buckets) - 1:
        return buckets[-2][0]
    if index == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, below = (0.0, 0.0) if index == 0 else buckets[index - 1]
    end, count = buckets[index]
    return start + (end - start) * ((rank - below) / (count - below))


def evaluate(expression: str, scrapes: Scrapes) -> Vector:
    parser = _Parser(expression)
    compiled = parser.expression()
    if parser.peek() is not None:
        raise ValueError(f"unread: {parser.tokens[parser.at :]}")
    return compiled(scrapes)
