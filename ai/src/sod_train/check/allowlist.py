"""The ONNX operator allowlist: which ops a shipped model may contain, and who breaks it.

The list lives in ``op_allowlist.txt`` at the repository root (one op per line, ``#``
starts a comment). Only the default ONNX domain counts: a node from any other domain
is a violation even when its ``op_type`` is on the list (a custom-domain ``Conv`` is
not the ONNX ``Conv`` a host's runtime implements). Sub-graphs (``If``/``Loop``/``Scan``
bodies) are walked too, so a forbidden op cannot hide inside a branch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import onnx

from sod_train.errors import UserInputError, joined
from sod_train.paths import ALLOWLIST_PATH
from sod_train.runtime.modelfile import text

DEFAULT_ALLOWLIST = ALLOWLIST_PATH

# Never allowed, whatever a list says: hosts upsample with ConvTranspose only.
FORBIDDEN_OPS = frozenset({"Resize", "Upsample"})

DEFAULT_DOMAINS = ("", "ai.onnx")


def load_allowlist(path: str | Path = DEFAULT_ALLOWLIST) -> frozenset[str]:
    """Read the op names in ``path`` (comments and blank lines ignored).

    Raises UserInputError when the file cannot be read, lists nothing, or lists an
    op in FORBIDDEN_OPS, so a hand-edited list cannot quietly admit Resize.
    """
    from sod_train.guards import read_text

    path = Path(path)
    content = read_text(path, "the op allowlist")
    ops = set()
    for line in content.splitlines():
        op = line.split("#", 1)[0].strip()
        if op:
            ops.add(op)
    if not ops:
        raise UserInputError(f"{path}: op allowlist lists no operators")
    forbidden = sorted(ops & FORBIDDEN_OPS)
    if forbidden:
        raise UserInputError(f"{path}: op allowlist must not list {', '.join(forbidden)}")
    return frozenset(ops)


def iter_nodes(graph: onnx.GraphProto, prefix: str = "") -> Iterator[tuple[str, onnx.NodeProto]]:
    """Yield ``(location, node)`` for every node of ``graph`` and of its sub-graphs.

    ``location`` names the node for a human: its name, or ``#index`` when unnamed,
    prefixed by the path of enclosing nodes and graph attributes
    (e.g. ``cond_if/then_branch/#2``).
    """
    for index, node in enumerate(graph.node):
        location = f"{prefix}{text(node.name) or f'#{index}'}"
        yield location, node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attr.g, f"{location}/{text(attr.name)}/")
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for k, sub in enumerate(attr.graphs):
                    yield from iter_nodes(sub, f"{location}/{text(attr.name)}[{k}]/")


def _domain_name(domain: str) -> str:
    return "ai.onnx (default)" if domain in DEFAULT_DOMAINS else text(domain)


def allowlist_violations(model: onnx.ModelProto, allowed: Iterable[str]) -> list[str]:
    """One line per node (sub-graphs included) whose op is not allowed.

    A node is allowed when its domain is the default ONNX domain and its
    ``op_type`` is in ``allowed`` and not in FORBIDDEN_OPS. Each line names the
    node, its op and its domain, e.g. ``node 'up1': Resize in domain
    ai.onnx (default) is not on the allowlist``.
    """
    return [f"node '{location}': {op} {why}" for location, op, why in _violations(model, allowed)]


def _violations(model: onnx.ModelProto, allowed: Iterable[str]) -> list[tuple[str, str, str]]:
    """(node location, 'Op in domain D', why) for every node the allowlist refuses."""
    allowed = frozenset(allowed) - FORBIDDEN_OPS
    found = []
    for location, node in iter_nodes(model.graph):
        if node.domain not in DEFAULT_DOMAINS:
            why = "is not in the default ONNX domain"
        elif node.op_type not in allowed:
            why = "is not on the allowlist"
        else:
            continue
        found.append((location, f"{text(node.op_type)} in domain {_domain_name(node.domain)}", why))
    return found


def disallowed_ops(model: onnx.ModelProto, allowed: Iterable[str], shown: int = 5) -> list[str]:
    """One line per disallowed op (op and domain), naming every one and where it is used.

    Unlike a list of nodes cut after the first few, no op can hide behind a count: each
    line is ``node 'up1': Resize in domain ai.onnx (default) is not on the allowlist`` or,
    for an op used more than once, ``2 nodes 'up1', 'cond_if/then_branch/#2': Resize ...``,
    with at most ``shown`` node locations per op.
    """
    found: dict[tuple[str, str], list[str]] = {}
    for location, op, why in _violations(model, allowed):
        found.setdefault((op, why), []).append(location)
    lines = []
    for (op, why), where in found.items():
        names = joined([f"'{w}'" for w in where], shown, ", ")
        nodes = f"node {names}" if len(where) == 1 else f"{len(where)} nodes {names}"
        lines.append(f"{nodes}: {op} {why}")
    return lines
