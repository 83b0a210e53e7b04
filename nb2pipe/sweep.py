"""A sweep's trials and plan: the `-p` grammar, grid and random search, and which stages are shared.

Pure and light (no kernels, no papermill): `nb2pipe sweep --dry-run` uses only this module.

1. Each `-p` gives one axis: `name=v1,v2,...` (each value typed as `-p` types it), `name=range(start,
   stop, step)` (stop excluded; floats rounded to the step's decimals) or `name=[json list]`.
   `--params-file` adds `{grid: {name: [values]}}` axes or gives `{trials: [{name: value}, ...]}`.
2. The axes' product is the grid, in a fixed order (the first axis varies slowest); `--random N
   --seed S` samples N of its trials without replacement, kept in grid order.
3. A parameter is swept when its value differs between trials. A stage reads a swept parameter
   directly or through an upstream stage that does; every other stage is shared: its fingerprint is
   the same in every trial, so it runs once.
4. The sweep id is a hash of the pipeline folder and the trial set: the same command again names
   the same sweep, so it resumes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from nb2pipe import model as m
from nb2pipe.errors import SpecError, close_match
from nb2pipe.spec import parse_value

MAX_TRIALS = 100_000
_RANGE = re.compile(r"^range\((?P<args>[^()]*)\)$")


@dataclass(frozen=True)
class StagePlan:
    """What one stage needs in a sweep: the swept parameters it reads (directly or through an
    upstream stage) and how many distinct runs that makes."""

    name: str
    reads: tuple[str, ...]
    runs: int
    trials: int

    @property
    def shared(self) -> bool:
        return not self.reads

    def line(self) -> str:
        if self.shared:
            return f"{self.name}: 1 run, shared by {self.trials} trial{'s' if self.trials != 1 else ''}"
        return f"{self.name}: {self.runs} run{'s' if self.runs != 1 else ''} (reads {', '.join(self.reads)})"


@dataclass(frozen=True)
class SweepPlan:
    sweep_id: str
    trials: list[dict[str, Any]]  # each trial's parameter overrides
    swept: tuple[str, ...]  # the parameters whose value differs between trials
    stages: list[StagePlan]

    @property
    def shared(self) -> list[str]:
        return [s.name for s in self.stages if s.shared]

    def lines(self) -> list[str]:
        out = [f"sweep {self.sweep_id}: {len(self.trials)} trial{'s' if len(self.trials) != 1 else ''}"]
        out += [f"  trial {i + 1}: " + (", ".join(f"{k}={v!r}" for k, v in t.items()) or "(defaults)") for i, t in enumerate(self.trials)]
        out.append("stages:")
        out += [f"  {stage.line()}" for stage in self.stages]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep_id,
            "trials": self.trials,
            "swept": list(self.swept),
            "stages": [{"name": s.name, "reads": list(s.reads), "runs": s.runs, "shared": s.shared} for s in self.stages],
        }


# --- the grammar --------------------------------------------------------------------------------


def parse_axis(pair: str) -> tuple[str, list[Any]]:
    """One `-p` of a sweep: (name, its values)."""
    name, sep, text = pair.partition("=")
    name, text = name.strip(), text.strip()
    if not sep or not name:
        raise SpecError(f"bad parameter '{pair}'; write it as -p name=v1,v2 or -p 'name=range(0, 10, 2)'")
    if _RANGE.match(text):
        values = _range_values(name, text)
    elif text.startswith("["):
        values = _json_values(name, text)
    else:
        values = [parse_value(v.strip()) for v in text.split(",")]
    _check_distinct(name, values)
    return name, values


def _range_values(name: str, text: str) -> list[Any]:
    """`range(start, stop, step)`: stop excluded; ints stay ints, floats are rounded to the step's
    decimals (computed in decimal, so 0.1 steps do not drift)."""
    match = _RANGE.match(text)
    assert match is not None
    parts = [p.strip() for p in match["args"].split(",")]
    fix = f"write -p '{name}=range(START, STOP, STEP)', e.g. range(0.1, 1.0, 0.1)"
    if len(parts) != 3:
        raise SpecError(f"-p {name}={text}: range needs start, stop and step; {fix}")
    try:
        start, stop, step = (Decimal(p) for p in parts)
    except InvalidOperation:
        raise SpecError(f"-p {name}={text}: start, stop and step must be numbers; {fix}") from None
    if not all(v.is_finite() for v in (start, stop, step)):
        raise SpecError(f"-p {name}={text}: start, stop and step must be finite numbers; {fix}")
    if step == 0:
        raise SpecError(f"-p {name}={text}: the step is 0; use a positive step (or a negative one to count down)")
    count = int(((stop - start) / step).to_integral_value(rounding=ROUND_CEILING)) if (stop - start) * step > 0 else 0
    if count <= 0:
        way = "above" if step > 0 else "below"
        raise SpecError(f"-p {name}={text} gives no values: with step {parts[2]} the stop must be {way} the start; {fix}")
    if count > MAX_TRIALS:
        raise SpecError(f"-p {name}={text} gives {count:,} values, more than {MAX_TRIALS:,}; use a larger step")
    whole = all("." not in p and "e" not in p.lower() for p in parts)
    values = [start + i * step for i in range(count)]
    if whole:
        return [int(v) for v in values]
    places = max(-step.normalize().as_tuple().exponent, 0)  # type: ignore[operator]
    return [round(float(v), int(places)) for v in values]


def _json_values(name: str, text: str) -> list[Any]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"-p {name}={text} is not a JSON list ({e.msg}); write it as -p '{name}=[1, \"a,b\"]'") from None
    if not isinstance(values, list) or not values:
        raise SpecError(f"-p {name}={text}: give a JSON list of one value or more, e.g. -p '{name}=[1, 2]'")
    return values


def _check_distinct(name: str, values: list[Any]) -> None:
    seen: set[str] = set()
    for value in values:
        key = canonical(value)
        if key in seen:
            raise SpecError(f"-p {name}: the value {value!r} is given twice; give each value once")
        seen.add(key)


def canonical(value: Any) -> str:
    """A value (or a trial) as canonical JSON: how trials are compared and identified."""
    return json.dumps(value, sort_keys=True, default=str, allow_nan=True)


# --- trials -------------------------------------------------------------------------------------


def grid(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The product of the axes, the first axis varying slowest."""
    size = 1
    for values in axes.values():
        size *= len(values)
    if size > MAX_TRIALS:
        raise SpecError(f"the grid has {size:,} trials, more than {MAX_TRIALS:,}; use fewer values or --random N")
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def sample(trials: list[dict[str, Any]], count: int, seed: int) -> list[dict[str, Any]]:
    """`count` trials drawn without replacement (the same seed draws the same ones), in grid order."""
    if count < 1:
        raise SpecError(f"--random {count} is not a number of trials; use 1 or more")
    if count > len(trials):
        raise SpecError(
            f"--random {count} asks for more trials than the grid has ({len(trials)}); use --random {len(trials)} or fewer, or add values"
        )
    chosen = random.Random(seed).sample(range(len(trials)), count)
    return [trials[i] for i in sorted(chosen)]


def read_sweep_file(path: Path) -> tuple[dict[str, list[Any]], list[dict[str, Any]] | None]:
    """`--params-file` of a sweep: ({name: values} axes, None) for `grid:`, ({}, trials) for `trials:`."""
    from nb2pipe.files import read_user_text
    from nb2pipe.spec import MAX_YAML_BYTES, parse_yaml

    fix = "write {grid: {name: [values]}} or {trials: [{name: value}, ...]}"
    where = f"--params-file '{path}'"
    text = read_user_text(path, what="--params-file", limit=MAX_YAML_BYTES, error=SpecError, hint=fix)
    data = parse_yaml(text, where, fix)
    if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in ("grid", "trials"):
        raise SpecError(f"{where} must hold one key, grid or trials; {fix}")
    if "grid" in data:
        axes = data["grid"]
        if not isinstance(axes, dict) or not axes:
            raise SpecError(f"{where}: grid must map parameter names to lists of values; {fix}")
        for name, values in axes.items():
            if not isinstance(name, str) or not isinstance(values, list) or not values:
                raise SpecError(f"{where}: grid entry {name!r} must be a parameter name with a list of values; {fix}")
            _check_distinct(name, values)
        return axes, None
    trials = data["trials"]
    if not isinstance(trials, list) or not trials or not all(isinstance(t, dict) for t in trials):
        raise SpecError(f"{where}: trials must be a list of mappings of parameter names to values; {fix}")
    for number, trial in enumerate(trials, 1):
        for name in trial:
            if not isinstance(name, str):
                raise SpecError(f"{where}: trial {number} has a parameter name {name!r} that is not a string; quote it")
    return {}, trials


def build_trials(
    pairs: list[str], params_file: Path | None = None, random_count: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """The trials asked for by `-p` axes, a `--params-file` and `--random N --seed S`."""
    axes: dict[str, list[Any]] = {}
    listed: list[dict[str, Any]] | None = None
    if params_file is not None:
        axes, listed = read_sweep_file(params_file)
        axes = dict(axes)
    for pair in pairs:
        name, values = parse_axis(pair)
        if name in axes:
            raise SpecError(f"parameter '{name}' is given twice (in -p or --params-file); give its values once")
        axes[name] = values
    if listed is not None and axes:
        raise SpecError("a --params-file with trials: lists every trial; drop the -p options or use grid: in the file")
    if listed is None and not axes:
        raise SpecError("a sweep needs values to try; give -p name=v1,v2 (or --params-file)")
    trials = listed if listed is not None else grid(axes)
    if random_count is not None:
        trials = sample(trials, random_count, seed)
    unique: dict[str, dict[str, Any]] = {}
    for trial in trials:
        unique.setdefault(canonical(trial), trial)
    return list(unique.values())


# --- the plan -----------------------------------------------------------------------------------


def plan_sweep(pipeline: m.Pipeline, trials: list[dict[str, Any]]) -> SweepPlan:
    """The sweep's plan: its id, trials (checked against the pipeline's parameters), and per
    stage the swept parameters it reads and how many distinct runs it needs."""
    from nb2pipe.graph import upstream
    from nb2pipe.spec import load_params

    defaults = load_params(pipeline)
    for trial in trials:
        for name in trial:
            if name not in defaults:
                raise SpecError(f"unknown parameter '{name}'; {close_match(name, defaults, 'parameters')}")
    values = [{**defaults, **trial} for trial in trials]
    swept = tuple(name for name in defaults if len({canonical(v[name]) for v in values}) > 1)
    edges = upstream(pipeline)
    reads: dict[str, set[str]] = {}
    stages = []
    for stage in pipeline.stages:  # in pipeline order: upstream stages come first
        reads[stage.name] = {p for p in stage.params if p in swept}.union(*(reads[u] for u in edges[stage.name]))
        names = tuple(p for p in swept if p in reads[stage.name])
        runs = len({canonical([v[p] for p in names]) for v in values})
        stages.append(StagePlan(stage.name, names, runs, len(trials)))
    return SweepPlan(sweep_id(pipeline, trials), trials, swept, stages)


def sweep_id(pipeline: m.Pipeline, trials: list[dict[str, Any]]) -> str:
    """`sweep-<12 hex>` from the pipeline folder and the set of trials (their order aside)."""
    key = canonical([os.path.realpath(pipeline.root), sorted(canonical(t) for t in trials)])
    return "sweep-" + hashlib.sha256(key.encode()).hexdigest()[:12]

