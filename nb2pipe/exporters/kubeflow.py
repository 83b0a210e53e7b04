"""`nb2pipe export --to kubeflow`: a compiled Kubeflow Pipelines v2 spec, `kubeflow/<name>.yaml`.

The exporter builds the pipeline with the kfp SDK's API from nb2pipe's own data (one lightweight
Python component per stage, the edges of graph.upstream as `.after()`, the pipeline's parameters
as pipeline inputs with params.yaml's values as defaults) and compiles it, so kfp is needed at
export time (imported here only). Export runs no generated code: a component's source (its
signature, and a fixed body) is only compiled, never executed, to give kfp a function whose
name, signature and source it reads; the body runs in the step's container. Each component runs
`python -m nb2pipe.run.single <nb2pipe_pipeline> <stage> --engine kubeflow` with its
parameters, where the extra pipeline input `nb2pipe_pipeline` is the pipeline folder as the
container sees it (default: the path relative to the notebook's folder, which is right when the
run starts there, as kfp's local SubprocessRunner does, or when the volume below is mounted).

- `image`: the default container image (default python:3.11-slim). It must have nb2pipe and the
  notebook's libraries installed, or list them in `packages` (pip requirements installed when
  the container starts, as kfp does for lightweight components).
- `pvc`: the name of a PersistentVolumeClaim holding the notebook's folder; it is mounted at
  `mount_path` (default /mnt/nb2pipe) in every step, and `nb2pipe_pipeline` defaults to the
  pipeline folder under it. Stages hand files to each other through that shared filesystem;
  without one, a real cluster gives every step its own empty disk.
- Per-stage settings (issue 17; stage_settings.py): `memory:` (and Kale's `limit:memory:QTY`,
  the same setting) is the container's memory limit; `retries:` the task's retry policy (no
  backoff, as `nb2pipe run` retries; the stage command then tries once: `--no-retries`);
  `timeout:` the pod's activeDeadlineSeconds (kfp-kubernetes); `env:NAME=VALUE` a container
  environment variable (`env:NAME` passes through from the image's environment); `secret:NAME` the
  key NAME of the Kubernetes Secret `nb2pipe-<pipeline>` as the variable NAME (create it from the
  `.env` file: `kubectl create secret generic nb2pipe-<pipeline> --from-env-file=.env`); the
  value is never in the spec. `allow-failure`: the step of such a stage and every step after it
  return a status ("ok", "failed", "skipped") that the next steps take as inputs: a failed
  allowed stage ends its step successfully with "failed", the steps after it print why and
  return "skipped" without running, and the run succeeds (the stage's own retries then happen
  inside its step). `kernel:` and `cell-timeout:` are applied by the stage command in the step.
- Kale's step tags (stage.meta): `image:IMAGE` sets that step's image; `limit:cpu:N` sets the
  CPU limit (`limit:memory:QTY` is the memory setting, above); any other `limit:RESOURCE:N`
  (nvidia.com/gpu, amd.com/gpu...) sets an accelerator type and limit; `label:KEY:VALUE` and
  `annotation:KEY:VALUE` become pod labels and annotations (kfp-kubernetes). Kale's `cache:`
  and `report:` are not applied. kfp caching is off for every step: the steps' real inputs
  are files, which kfp does not see.
"""

from __future__ import annotations

import inspect
import json
import keyword
import linecache
import tempfile
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe import graph
from nb2pipe.errors import SpecError
from nb2pipe.exporters import STAGE_MODULE, pipeline_from_wdir, pipeline_name
from nb2pipe.exporters.stage_settings import NO_RETRIES_FLAG, kubernetes_quantity, set_env, stage_settings, whole_seconds
from nb2pipe.model import Pipeline, Settings, Stage, meta_dict
from nb2pipe.spec import stage_param_values

OPTIONS = ("image", "packages", "pvc", "mount_path")
DEFAULT_IMAGE = "python:3.11-slim"
DEFAULT_MOUNT_PATH = "/mnt/nb2pipe"
OUT_DIR = "kubeflow"
INSTALL_HINT = "pip install 'nb2pipe[kubeflow]'"
PIPELINE_INPUT = "nb2pipe_pipeline"

_TYPES: dict[type, type] = {bool: bool, int: int, float: float, str: str, list: list, dict: dict}

# The body of every component. Its first statement takes the inputs before any other name is
# bound, so a parameter may have any name (`json`, `sys`, ...) without being shadowed.
_COMPONENT_BODY = """\
    _nb2pipe_inputs = dict(locals())
    import json as _nb2pipe_json, subprocess as _nb2pipe_subprocess, sys as _nb2pipe_sys

    _nb2pipe_pipeline = _nb2pipe_inputs.pop({pipeline_input})
    _nb2pipe_subprocess.run(
        [_nb2pipe_sys.executable, "-m", {stage_module}, _nb2pipe_pipeline, {stage},
         "--engine", "kubeflow", "--params-json", _nb2pipe_json.dumps(_nb2pipe_inputs){retries}],
        check=True,
    )
"""
# The body of a step at or after an `allow-failure` stage: it takes the status of each step
# before it that has one, and returns its own.
_GATED_BODY = """\
    _nb2pipe_inputs = dict(locals())
    import json as _nb2pipe_json, subprocess as _nb2pipe_subprocess, sys as _nb2pipe_sys

    _nb2pipe_pipeline = _nb2pipe_inputs.pop({pipeline_input})
    _nb2pipe_before = {{_nb2pipe_stage: _nb2pipe_inputs.pop(_nb2pipe_input) for _nb2pipe_input, _nb2pipe_stage in {after}}}
    for _nb2pipe_stage, _nb2pipe_status in sorted(_nb2pipe_before.items()):
        if _nb2pipe_status != "ok":
            _nb2pipe_why = "failed" if _nb2pipe_status == "failed" else "was skipped"
            print("stage %r skipped: stage %r before it %s" % ({stage}, _nb2pipe_stage, _nb2pipe_why))
            return "skipped"
    _nb2pipe_done = _nb2pipe_subprocess.run(
        [_nb2pipe_sys.executable, "-m", {stage_module}, _nb2pipe_pipeline, {stage},
         "--engine", "kubeflow", "--params-json", _nb2pipe_json.dumps(_nb2pipe_inputs){retries}],
        check={check},
    )
    if _nb2pipe_done.returncode:
        print("stage %r failed and allows failure: the stages after it are skipped" % {stage})
        return "failed"
    return "ok"
"""
AFTER_PREFIX = "nb2pipe_after_"  # the input of a step that takes the status of the step before it


def _require_kfp(kubernetes: bool) -> None:
    try:
        import kfp

        if kubernetes:
            import kfp.kubernetes  # noqa: F401
    except ImportError:
        what = "kfp-kubernetes (for pod labels, annotations and volumes)" if kubernetes else "the kfp SDK"
        raise SpecError(f"--to kubeflow needs {what}, which is not installed; install it: {INSTALL_HINT}") from None


# --- the pipeline as data ----------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """How a step stands to the `allow-failure` stages before it (all empty: it does not)."""

    statuses: tuple[tuple[str, str], ...] = ()  # (input name, stage) of the steps before it that return a status
    returns_status: bool = False  # the step is allowed to fail, or comes after one that is
    allowed: bool = False  # its own stage allows failure
    engine_retries: bool = True  # kfp retries the step (else the stage command does: an allowed failure ends the step well)


@dataclass(frozen=True)
class _Step:
    stage: str
    function: str  # the component's Python name
    image: str
    params: tuple[str, ...]
    after: tuple[str, ...]
    settings: tuple[tuple[str, tuple[Any, ...]], ...]  # (what, arguments), applied by _apply
    run: Settings  # the stage's effective settings
    gate: Gate


@dataclass(frozen=True)
class _Plan:
    name: str
    inputs: tuple[tuple[str, type, Any], ...]  # (name, type, default), the pipeline's inputs
    steps: tuple[_Step, ...]
    packages: tuple[str, ...]
    pvc: str | None
    mount_path: str

    @property
    def uses_kubernetes(self) -> bool:
        return bool(self.pvc) or any(
            what in ("label", "annotation") for s in self.steps for what, _ in s.settings
        ) or any(s.run.timeout is not None or s.run.secrets for s in self.steps)

    @property
    def secret_name(self) -> str:
        """The Kubernetes Secret holding the stages' secrets, by key."""
        return "nb2pipe-" + "".join(c if c.isascii() and c.isalnum() else "-" for c in self.name.lower()).strip("-")[:240]


def _split(stage: Stage, key: str, value: str) -> tuple[str, str]:
    name, sep, rest = value.partition(":")
    if not sep or not name or not rest:
        raise SpecError(f"stage '{stage.name}': Kale tag '{key}:{value}' must read '{key}:NAME:VALUE'")
    return name, rest


def _step_settings(stage: Stage) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """The stage's Kale settings: CPU, memory and accelerator limits, pod labels and annotations."""
    meta = meta_dict(stage.meta)
    settings: list[tuple[str, tuple[Any, ...]]] = []
    for value in meta.get("limit", []):
        resource, amount = _split(stage, "limit", value)
        if resource == "memory":
            continue  # the stage's memory setting (settings.kale_memory_limit)
        if resource == "cpu":
            settings.append((resource, (amount,)))
        elif not amount.isdigit():
            raise SpecError(f"stage '{stage.name}': Kale tag 'limit:{value}': an accelerator limit is a whole number")
        else:
            settings.append(("accelerator", (resource, int(amount))))
    for key in ("label", "annotation"):
        settings.extend((key, _split(stage, key, value)) for value in meta.get(key, []))
    return tuple(settings)


def _function_name(stage: str) -> str:
    name = stage.replace("-", "_")
    return name + "_" if keyword.iskeyword(name) else name


def plan_pipeline(pipeline: Pipeline, params: dict[str, Any], image: str, packages: tuple[str, ...], pvc: str | None,
          mount_path: str) -> _Plan:
    edges = graph.upstream(pipeline)
    ordered = graph.order(pipeline, edges)
    by_name = {s.name: s for s in pipeline.stages}
    seen: dict[str, str] = {}
    for name in ordered:
        other = seen.setdefault(_function_name(name), name)
        if other != name:
            raise SpecError(f"stages '{other}' and '{name}' get the same Kubeflow name; rename one of them")
    for key in params:
        if (key == PIPELINE_INPUT or not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key)
                or key.startswith(AFTER_PREFIX)):
            raise SpecError(f"parameter '{key}' cannot be a Kubeflow pipeline input; rename it in the notebook")
    default_dir = pipeline_from_wdir(pipeline)
    if pvc:
        default_dir = f"{mount_path.rstrip('/')}/{default_dir}"
    inputs: list[tuple[str, type, Any]] = [(PIPELINE_INPUT, str, default_dir)]
    inputs += [(key, _type(params, key), _default(key, value)) for key, value in params.items()]
    steps = []
    run_settings = stage_settings(pipeline)
    gates = _gates(ordered, edges, run_settings)
    for name in ordered:
        stage = by_name[name]
        stage_param_values(pipeline, stage, params)  # each has a value
        steps.append(
            _Step(
                stage=name,
                function=_function_name(name),
                image=meta_dict(stage.meta).get("image", [image])[-1],
                params=tuple(stage.params),
                after=tuple(edges[name]),
                settings=_step_settings(stage),
                run=run_settings[name],
                gate=gates[name],
            )
        )
    return _Plan(pipeline_name(pipeline), tuple(inputs), tuple(steps), packages, pvc, mount_path)


def _gates(ordered: list[str], edges: dict[str, list[str]], settings: dict[str, Settings]) -> dict[str, Gate]:
    """Each step's gate: the steps at or after an `allow-failure` stage return a status, and take
    the statuses of the steps just before them that return one."""
    gates: dict[str, Gate] = {}
    for name in ordered:
        allowed = bool(settings[name].allow_failure)
        statuses = tuple((AFTER_PREFIX + _function_name(up), up) for up in edges[name] if gates[up].returns_status)
        gates[name] = Gate(statuses, allowed or bool(statuses), allowed, engine_retries=not allowed)
    return gates


def _type(params: dict[str, Any], key: str) -> type:
    kind = _TYPES.get(type(params[key]))
    if kind is None:
        raise SpecError(
            f"parameter '{key}' = {params[key]!r} cannot be a Kubeflow pipeline input (use a number, string, bool, list or mapping)"
        )
    return kind


def _default(key: str, value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise SpecError(f"parameter '{key}' = {value!r} cannot be a Kubeflow pipeline input; it must be JSON") from None
    return value


# --- components: compiled, never run here ---------------------------------------------------


def component_source(stage: Stage, params: dict[str, Any], gate: Gate = Gate()) -> str:
    """The Python source of the stage's component: what runs in the step's container. Only
    identifiers, type names, booleans and JSON string literals are put into it."""
    args = ", ".join(
        [f"{PIPELINE_INPUT}: str"] + [f"{p}: {_type(params, p).__name__}" for p in stage.params]
        + [f"{name}: str" for name, _ in gate.statuses]
    )
    fields = {
        "pipeline_input": json.dumps(PIPELINE_INPUT), "stage_module": json.dumps(STAGE_MODULE), "stage": json.dumps(stage.name),
        "retries": f", {json.dumps(NO_RETRIES_FLAG)}" if gate.engine_retries else "",
    }  # fmt: skip
    if gate.returns_status:
        after = "[" + ", ".join(f"({json.dumps(name)}, {json.dumps(up)})" for name, up in gate.statuses) + "]"
        body = _GATED_BODY.format(**fields, after=after, check=not gate.allowed)
    else:
        body = _COMPONENT_BODY.format(**fields)
    returns = " -> str" if gate.returns_status else ""
    doc = json.dumps(f"Run stage {stage.name} of an nb2pipe pipeline.")
    return f"def {_function_name(stage.name)}({args}){returns}:\n    {doc}\n" + body


def _component_function(step: _Step, source: str, types_of: dict[str, type]) -> Callable[..., Any]:
    """A function kfp can make a component of, built without running `source`: the code object
    comes from compiling it (which executes nothing), its annotations from nb2pipe's data, and
    its source text (which kfp embeds in the component) from the line cache."""
    filename = f"<nb2pipe kubeflow component {step.stage}>"
    module_code = compile(source, filename, "exec", dont_inherit=True)
    (code,) = [c for c in module_code.co_consts if isinstance(c, types.CodeType)]
    function = types.FunctionType(code, {"__name__": __name__}, step.function)
    statuses = dict.fromkeys(dict(step.gate.statuses), str)
    function.__annotations__ = {PIPELINE_INPUT: str, **{p: types_of[p] for p in step.params}, **statuses}
    if step.gate.returns_status:
        function.__annotations__["return"] = str
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return function


def _pipeline_function(plan: _Plan, components: dict[str, Any]) -> Callable[..., Any]:
    """The pipeline function kfp calls with one channel per input: nb2pipe's own code."""

    def add_tasks(values: dict[str, Any]) -> None:
        tasks: dict[str, Any] = {}
        for step in plan.steps:
            statuses = {name: tasks[up].output for name, up in step.gate.statuses}
            add_task(plan, step, components[step.stage], values, tasks, **statuses)

    return signed_pipeline(plan, add_tasks)


def add_task(plan: _Plan, step: _Step, component: Any, values: dict[str, Any], tasks: dict[str, Any], **extra: Any) -> None:
    """One step's task, with its inputs (the pipeline's, and `extra`), edges and settings, into `tasks`."""
    task = component(**{PIPELINE_INPUT: values[PIPELINE_INPUT]}, **{p: values[p] for p in step.params}, **extra)
    task.set_display_name(step.stage)
    task.set_caching_options(False)
    for up in step.after:
        task.after(tasks[up])
    _apply(task, step.settings)
    _apply_run_settings(task, step, plan.secret_name)
    if plan.pvc:
        from kfp import kubernetes

        kubernetes.mount_pvc(task, pvc_name=plan.pvc, mount_path=plan.mount_path)
    tasks[step.stage] = task


def signed_pipeline(plan: _Plan, add_tasks: Callable[[dict[str, Any]], None]) -> Callable[..., Any]:
    """A pipeline function whose inputs are described by a signature built from data; called
    with one channel per input, it hands them to `add_tasks` by name."""

    def pipeline(*channels: Any) -> None:
        add_tasks(dict(zip((name for name, _, _ in plan.inputs), channels, strict=True)))

    pipeline.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=kind)
         for name, kind, default in plan.inputs]
    )
    pipeline.__doc__ = f"nb2pipe pipeline {plan.name}"
    return pipeline


def _apply(task: Any, settings: tuple[tuple[str, tuple[Any, ...]], ...]) -> None:
    for what, args in settings:
        if what == "cpu":
            task.set_cpu_limit(*args)
        elif what == "memory":
            task.set_memory_limit(*args)
        elif what == "accelerator":
            task.set_accelerator_type(args[0]).set_accelerator_limit(args[1])
        else:
            from kfp import kubernetes

            add = kubernetes.add_pod_label if what == "label" else kubernetes.add_pod_annotation
            add(task, *args)


def _apply_run_settings(task: Any, step: _Step, secret_name: str) -> None:
    """The stage's settings that kfp and Kubernetes have a word for (the module's docstring)."""
    settings = step.run
    if settings.memory is not None:
        task.set_memory_limit(kubernetes_quantity(settings.memory))
    if settings.retries and step.gate.engine_retries:
        task.set_retry(num_retries=settings.retries)
    for name, value in set_env(settings).items():
        task.set_env_variable(name, value)
    if settings.timeout is not None or settings.secrets:
        from kfp import kubernetes

        if settings.timeout is not None:
            kubernetes.set_timeout(task, whole_seconds(settings.timeout))
        if settings.secrets:
            kubernetes.use_secret_as_env(task, secret_name=secret_name, secret_key_to_env={n: n for n in settings.secrets})


def _kfp_name(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "pipeline"


def render(pipeline: Pipeline, params: dict[str, Any], *, image: str | None = None, packages: tuple[str, ...] | list[str] = (),
           pvc: str | None = None, mount_path: str | None = None) -> dict[str, str]:
    plan = plan_pipeline(pipeline, params, image or DEFAULT_IMAGE, tuple(packages or ()), pvc, mount_path or DEFAULT_MOUNT_PATH)
    by_name = {s.name: s for s in pipeline.stages}
    sources = {step.stage: component_source(by_name[step.stage], params, step.gate) for step in plan.steps}
    compiled = compile_spec(plan, sources, {}, lambda components: _pipeline_function(plan, components))
    return {f"{OUT_DIR}/{plan.name}.yaml": header(plan.name, "`nb2pipe export --to kubeflow`") + compiled}


def header(name: str, written_by: str) -> str:
    return f"# Kubeflow Pipelines spec of the nb2pipe pipeline {json.dumps(name, ensure_ascii=False)}, written by {written_by}.\n"


def compile_spec(plan: _Plan, sources: dict[str, str], extra_inputs: dict[str, dict[str, type]],
                 build: Callable[[dict[str, Any]], Callable[..., Any]]) -> str:
    """The compiled spec: a component per step from its source (`extra_inputs`: inputs beyond the
    pipeline's, per stage), and the pipeline function `build` makes of them."""
    _require_kfp(plan.uses_kubernetes)
    from kfp import compiler, dsl

    types_of = {name: kind for name, kind, _ in plan.inputs}
    filenames = []
    try:
        components = {}
        for step in plan.steps:
            function = _component_function(step, sources[step.stage], types_of)
            function.__annotations__.update(extra_inputs.get(step.stage, {}))
            filenames.append(function.__code__.co_filename)
            components[step.stage] = dsl.component(function, base_image=step.image, packages_to_install=list(plan.packages))
        with tempfile.TemporaryDirectory(prefix="nb2pipe-kfp-") as tmp:
            package = Path(tmp) / "pipeline.yaml"
            built = dsl.pipeline(name=_kfp_name(plan.name), description=f"nb2pipe pipeline {plan.name}")(build(components))
            compiler.Compiler().compile(built, package_path=str(package))
            return package.read_text(encoding="utf-8")
    except (ValueError, TypeError) as e:  # kfp's word on a bad limit, name or type
        raise SpecError(f"Kubeflow could not compile the pipeline: {e}") from None
    finally:
        for filename in filenames:
            linecache.cache.pop(filename, None)
