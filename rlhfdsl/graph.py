"""The stage graph as DOT, Mermaid or JSON (`rlhfc graph`)."""

from __future__ import annotations

import json

from rlhfdsl.lower import Lowered

_SHAPES = {"population": "ellipse", "task": "note", "pretrain": "box3d", "report": "doubleoctagon",
           "evaluate": "hexagon"}


def _label(stage) -> str:
    return f"{stage.id}\\n{stage.symbol} · {stage.short}"


def to_dot(lowered: Lowered, status: dict | None = None) -> str:
    lines = ["digraph rlhf {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for stage in lowered.stages():
        style = ""
        if status is not None and stage.id in status:
            style = ', style=filled, fillcolor="#d8f0d8"' if status[stage.id].cached else \
                ', style=filled, fillcolor="#f8e0c0"'
        shape = _SHAPES.get(stage.kind, "box")
        lines.append(f'  "{stage.id}" [label="{_label(stage)}", shape={shape}{style}];')
    for a, b, data in sorted(lowered.graph.edges(data=True)):
        lines.append(f'  "{a}" -> "{b}" [label="{data.get("role", "")}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(lowered: Lowered) -> str:
    ids = {s.id: f"n{i}" for i, s in enumerate(lowered.stages())}
    lines = ["flowchart LR"]
    for stage in lowered.stages():
        text = f"{stage.id}<br/>{stage.symbol} · {stage.short}".replace('"', "'")
        lines.append(f'  {ids[stage.id]}["{text}"]')
    for a, b, data in sorted(lowered.graph.edges(data=True)):
        lines.append(f"  {ids[a]} -->|{data.get('role', '')}| {ids[b]}")
    return "\n".join(lines) + "\n"


def to_json(lowered: Lowered, status: dict | None = None) -> str:
    nodes = []
    for stage in lowered.stages():
        node = {"id": stage.id, "kind": stage.kind, "name": stage.name, "round": stage.round,
                "symbol": stage.symbol, "key": stage.key, "branches": list(stage.branches),
                "inputs": {r: list(i) for r, i in stage.inputs.items()}, "params": stage.params}
        if status is not None and stage.id in status:
            node["cached"] = status[stage.id].cached
            node["reason"] = status[stage.id].reason
        nodes.append(node)
    edges = [{"from": a, "to": b, "role": d.get("role")} for a, b, d in sorted(lowered.graph.edges(data=True))]
    return json.dumps({"stages": nodes, "edges": edges}, indent=2, sort_keys=True) + "\n"
