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
- Kale's step tags (stage.meta): `image:IMAGE` sets that step's image; `limit:cpu:N`,
  `limit:memory:QTY` set CPU and memory limits; any other `limit:RESOURCE:N` (nvidia.com/gpu,
  amd.com/gpu...) sets an accelerator type and limit; `label:KEY:VALUE` and
  `annotation:KEY:VALUE` become pod labels and annotations (kfp-kubernetes). Other Kale
  settings (secret:, cache:, report:) are not applied. kfp caching is off for every step:
  the steps' real inputs are files, which kfp does not see.
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
from nb2pipe.model import Pipeline, Stage, meta_dict
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
         "--engine", "kubeflow", "--params-json", _nb2pipe_json.dumps(_nb2pipe_inputs)],
        check=True,
    )
"""


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
class _Step:
    stage: str
    function: str  # the component's Python name
    image: str
    params: tuple[str, ...]
    after: tuple[str, ...]
    settings: tuple[tuple[str, tuple[Any, ...]], ...]  # (what, arguments), applied by _apply


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
        return bool(self.pvc) or any(what in ("label", "annotation") for s in self.steps for what, _ in s.settings)


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
        if resource in ("cpu", "memory"):
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
        if key == PIPELINE_INPUT or not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise SpecError(f"parameter '{key}' cannot be a Kubeflow pipeline input; rename it in the notebook")
    default_dir = pipeline_from_wdir(pipeline)
    if pvc:
        default_dir = f"{mount_path.rstrip('/')}/{default_dir}"
    inputs: list[tuple[str, type, Any]] = [(PIPELINE_INPUT, str, default_dir)]
    inputs += [(key, _type(params, key), _default(key, value)) for key, value in params.items()]
    steps = []
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
            )
        )
    return _Plan(pipeline_name(pipeline), tuple(inputs), tuple(steps), packages, pvc, mount_path)


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


def component_source(stage: Stage, params: dict[str, Any]) -> str:
    """The Python source of the stage's component: what runs in the step's container. Only
    identifiers, type names and JSON string literals are put into it."""
    args = ", ".join([f"{PIPELINE_INPUT}: str"] + [f"{p}: {_type(params, p).__name__}" for p in stage.params])
    return (
        f"def {_function_name(stage.name)}({args}):\n"
        f"    {json.dumps(f'Run stage {stage.name} of an nb2pipe pipeline.')}\n"
        + _COMPONENT_BODY.format(
            pipeline_input=json.dumps(PIPELINE_INPUT), stage_module=json.dumps(STAGE_MODULE), stage=json.dumps(stage.name)
        )
    )


def _component_function(step: _Step, source: str, types_of: dict[str, type]) -> Callable[..., Any]:
    """A function kfp can make a component of, built without running `source`: the code object
    comes from compiling it (which executes nothing), its annotations from nb2pipe's data, and
    its source text (which kfp embeds in the component) from the line cache."""
    filename = f"<nb2pipe kubeflow component {step.stage}>"
    module_code = compile(source, filename, "exec", dont_inherit=True)
    (code,) = [c for c in module_code.co_consts if isinstance(c, types.CodeType)]
    function = types.FunctionType(code, {"__name__": __name__}, step.function)
    function.__annotations__ = {PIPELINE_INPUT: str, **{p: types_of[p] for p in step.params}}
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return function


def _pipeline_function(plan: _Plan, components: dict[str, Any]) -> Callable[..., Any]:
    """The pipeline function kfp calls with one channel per input: nb2pipe's own code."""

    def add_tasks(values: dict[str, Any]) -> None:
        tasks: dict[str, Any] = {}
        for step in plan.steps:
            add_task(plan, step, components[step.stage], values, tasks)

    return signed_pipeline(plan, add_tasks)


def add_task(plan: _Plan, step: _Step, component: Any, values: dict[str, Any], tasks: dict[str, Any], **extra: Any) -> None:
    """One step's task, with its inputs (the pipeline's, and `extra`), edges and settings, into `tasks`."""
    task = component(**{PIPELINE_INPUT: values[PIPELINE_INPUT]}, **{p: values[p] for p in step.params}, **extra)
    task.set_display_name(step.stage)
    task.set_caching_options(False)
    for up in step.after:
        task.after(tasks[up])
    _apply(task, step.settings)
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


def _kfp_name(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "pipeline"


def render(pipeline: Pipeline, params: dict[str, Any], *, image: str | None = None, packages: tuple[str, ...] | list[str] = (),
           pvc: str | None = None, mount_path: str | None = None) -> dict[str, str]:
    plan = plan_pipeline(pipeline, params, image or DEFAULT_IMAGE, tuple(packages or ()), pvc, mount_path or DEFAULT_MOUNT_PATH)
    by_name = {s.name: s for s in pipeline.stages}
    sources = {step.stage: component_source(by_name[step.stage], params) for step in plan.steps}
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
