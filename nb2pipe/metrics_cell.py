"""A metrics cell in a stage script: the names it reports, and the code that writes their values to
the stage's metrics file."""

from __future__ import annotations

import ast

from nb2pipe import model as m


def metric_names(source: str) -> list[str]:
    """Names a metrics cell reports: its top-level assignments, and Kale's `print(x)` / bare `x`."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Expr):
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "print":
                targets = [a for a in value.args if isinstance(a, ast.Name)]
            elif isinstance(value, ast.Name):
                targets = [value]
        for target in targets:
            if isinstance(target, ast.Name) and target.id not in names:
                names.append(target.id)
    return names


def metrics_code(cell: m.Cell, metrics_file: str) -> str:
    """The code that writes the metrics cell's numbers to `metrics_file` (JSON); it prints nothing."""
    names = metric_names(cell.source)
    pairs = ", ".join(f"{n!r}: {n}" for n in names)
    return (
        "import json as _nb2pipe_json, numbers as _nb2pipe_numbers, os as _nb2pipe_os\n"
        f"_nb2pipe_metrics = {{{pairs}}}\n"
        "_nb2pipe_metrics = {\n"
        "    k: (int(v) if isinstance(v, _nb2pipe_numbers.Integral) else float(v))\n"
        "    for k, v in _nb2pipe_metrics.items()\n"
        "    if isinstance(v, _nb2pipe_numbers.Number) and not isinstance(v, bool)\n"
        "}\n"
        f"_nb2pipe_os.makedirs(_nb2pipe_os.path.dirname({metrics_file!r}), exist_ok=True)\n"
        f"with open({metrics_file!r}, 'w') as _nb2pipe_file:\n"
        "    _nb2pipe_json.dump(_nb2pipe_metrics, _nb2pipe_file, indent=2, sort_keys=True)\n"
    )
