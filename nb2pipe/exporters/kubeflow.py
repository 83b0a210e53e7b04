"""`nb2pipe export --to kubeflow`: a compiled Kubeflow Pipelines v2 spec, `kubeflow/<name>.yaml`.

The exporter writes a small KFP program (one lightweight Python component per stage, the edges
of graph.upstream as `.after()`, the pipeline's parameters as pipeline inputs with params.yaml's
values as defaults), imports it and compiles it with the kfp SDK, so kfp is needed at export
time (imported here only). Each component runs
`python -m nb2pipe.exporters.execute <nb2pipe_pipeline> <stage> --engine kubeflow` with its
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

import importlib.util
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from nb2pipe import graph
from nb2pipe.errors import SpecError
from nb2pipe.exporters import pipeline_from_wdir, pipeline_name
from nb2pipe.model import Pipeline, Stage, meta_dict

OPTIONS = ("image", "packages", "pvc", "mount_path")
DEFAULT_IMAGE = "python:3.11-slim"
DEFAULT_MOUNT_PATH = "/mnt/nb2pipe"
OUT_DIR = "kubeflow"
INSTALL_HINT = "pip install 'nb2pipe[kubeflow]'"
PIPELINE_INPUT = "nb2pipe_pipeline"

_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


def _require_kfp(kubernetes: bool) -> None:
    try:
        import kfp  # noqa: F401

        if kubernetes:
            import kfp.kubernetes  # noqa: F401
    except ImportError:
        what = "kfp-kubernetes (for pod labels, annotations and volumes)" if kubernetes else "the kfp SDK"
        raise SpecError(f"--to kubeflow needs {what}, which is not installed; install it: {INSTALL_HINT}") from None


def _q(text: str) -> str:
    return json.dumps(text)


def _split(stage: Stage, key: str, value: str) -> tuple[str, str]:
    name, sep, rest = value.partition(":")
    if not sep or not name or not rest:
        raise SpecError(f"stage '{stage.name}': Kale tag '{key}:{value}' must read '{key}:NAME:VALUE'")
    return name, rest


def _step_settings(stage: Stage, var: str) -> tuple[list[str], bool]:
    """Lines of Python applying the stage's Kale settings to task `var`; whether kfp-kubernetes is used."""
    meta = meta_dict(stage.meta)
    lines: list[str] = []
    uses_kubernetes = False
    for value in meta.get("limit", []):
        resource, amount = _split(stage, "limit", value)
        if resource == "cpu":
            lines.append(f"{var}.set_cpu_limit({_q(amount)})")
        elif resource == "memory":
            lines.append(f"{var}.set_memory_limit({_q(amount)})")
        else:
            if not amount.isdigit():
                raise SpecError(f"stage '{stage.name}': Kale tag 'limit:{value}': an accelerator limit is a whole number")
            lines.append(f"{var}.set_accelerator_type({_q(resource)}).set_accelerator_limit({int(amount)})")
    for key, function in (("label", "add_pod_label"), ("annotation", "add_pod_annotation")):
        for value in meta.get(key, []):
            name, text = _split(stage, key, value)
            lines.append(f"kubernetes.{function}({var}, {_q(name)}, {_q(text)})")
            uses_kubernetes = True
    return lines, uses_kubernetes


def _identifier(name: str) -> str:
    return name.replace("-", "_")


def program(pipeline: Pipeline, params: dict[str, Any], *, image: str = DEFAULT_IMAGE, packages: tuple[str, ...] | list[str] = (),
            pvc: str | None = None, mount_path: str = DEFAULT_MOUNT_PATH) -> tuple[str, bool]:
    """The KFP program (Python source) for the pipeline, and whether it needs kfp-kubernetes."""
    name = pipeline_name(pipeline)
    edges = graph.upstream(pipeline)
    ordered = graph.order(pipeline, edges)
    by_name = {s.name: s for s in pipeline.stages}
    seen: dict[str, str] = {}
    for stage in ordered:
        other = seen.setdefault(_identifier(stage), stage)
        if other != stage:
            raise SpecError(f"stages '{other}' and '{stage}' get the same Kubeflow name; rename one of them")
    for key in params:
        if key == PIPELINE_INPUT or not key.isidentifier():
            raise SpecError(f"parameter '{key}' cannot be a Kubeflow pipeline input; rename it in the notebook")
    default_dir = pipeline_from_wdir(pipeline)
    if pvc:
        default_dir = f"{mount_path.rstrip('/')}/{default_dir}"
    uses_kubernetes = bool(pvc)
    lines = [
        f'"""KFP program of the nb2pipe pipeline {name!r}, written by `nb2pipe export --to kubeflow`."""',
        "from kfp import dsl",
        "",
        "_components = {}",
        "",
    ]
    for stage_name in ordered:
        stage = by_name[stage_name]
        meta = meta_dict(stage.meta)
        stage_image = meta.get("image", [image])[-1]
        args = ", ".join([f"{PIPELINE_INPUT}: str"] + [f"{p}: {_type(params, p)}" for p in stage.params])
        values = "{" + ", ".join(f"{_q(p)}: {p}" for p in stage.params) + "}"
        lines += [
            "",
            f"@dsl.component(base_image={_q(stage_image)}, packages_to_install={json.dumps(list(packages))})",
            f"def {_identifier(stage_name)}({args}):",
            f'    """Run stage {stage_name!r} of the nb2pipe pipeline {name!r}."""',
            "    import json as _json, subprocess as _subprocess, sys as _sys",
            "",
            "    _subprocess.run(",
            f'        [_sys.executable, "-m", "nb2pipe.exporters.execute", {PIPELINE_INPUT}, {_q(stage_name)},',
            f'         "--engine", "kubeflow", "--params-json", _json.dumps({values})],',
            "        check=True,",
            "    )",
            "",
            f"_components[{_q(stage_name)}] = {_identifier(stage_name)}",
            "",
        ]
    inputs = [f"{PIPELINE_INPUT}: str = {_q(default_dir)}"]
    for key, value in params.items():
        inputs.append(f"{key}: {_type(params, key)} = {_default(key, value)}")
    body: list[str] = ["    _tasks = {}"]
    for stage_name in ordered:
        stage = by_name[stage_name]
        call = ", ".join([f"{PIPELINE_INPUT}={PIPELINE_INPUT}"] + [f"{p}={p}" for p in stage.params])
        var = "_task"
        body += [
            f"    {var} = _components[{_q(stage_name)}]({call})",
            f"    {var}.set_display_name({_q(stage_name)})",
            f"    {var}.set_caching_options(False)",
        ]
        body += [f"    {var}.after(_tasks[{_q(up)}])" for up in edges[stage_name]]
        settings, kube = _step_settings(stage, var)
        uses_kubernetes |= kube
        body += [f"    {line}" for line in settings]
        if pvc:
            body.append(f"    kubernetes.mount_pvc({var}, pvc_name={_q(pvc)}, mount_path={_q(mount_path)})")
        body.append(f"    _tasks[{_q(stage_name)}] = {var}")
    if uses_kubernetes:
        lines.insert(2, "from kfp import kubernetes")
    lines += [
        "",
        f"@dsl.pipeline(name={_q(_kfp_name(name))}, description={_q(f'nb2pipe pipeline {name}')})",
        f"def pipeline({', '.join(inputs)}):",
        *body,
        "",
    ]
    return "\n".join(lines), uses_kubernetes


def _kfp_name(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "pipeline"


def _type(params: dict[str, Any], key: str) -> str:
    if key not in params:
        raise SpecError(f"a stage reads parameter '{key}', which params.yaml lacks; re-export the notebook")
    kind = _TYPES.get(type(params[key]))
    if kind is None:
        raise SpecError(f"parameter '{key}' = {params[key]!r} cannot be a Kubeflow pipeline input (use a number, string, bool, list or mapping)")
    return kind


def _default(key: str, value: Any) -> str:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise SpecError(f"parameter '{key}' = {value!r} cannot be a Kubeflow pipeline input; it must be JSON") from None
    return repr(value)


def render(pipeline: Pipeline, params: dict[str, Any], *, image: str | None = None, packages: tuple[str, ...] | list[str] = (),
           pvc: str | None = None, mount_path: str | None = None) -> dict[str, str]:
    source, uses_kubernetes = program(
        pipeline, params, image=image or DEFAULT_IMAGE, packages=tuple(packages or ()), pvc=pvc,
        mount_path=mount_path or DEFAULT_MOUNT_PATH,
    )
    _require_kfp(uses_kubernetes)
    from kfp import compiler

    name = pipeline_name(pipeline)
    with tempfile.TemporaryDirectory(prefix="nb2pipe-kfp-") as tmp:
        module_path = Path(tmp) / f"nb2pipe_kfp_{_identifier(name)}.py"
        module_path.write_text(source, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(module_path.stem, module_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_path.stem] = module  # inspect.getsource (used by kfp) looks it up here
        try:
            spec.loader.exec_module(module)
            package = Path(tmp) / "pipeline.yaml"
            compiler.Compiler().compile(module.pipeline, package_path=str(package))
        except (ValueError, TypeError) as e:  # kfp's word on a bad limit, name or type
            raise SpecError(f"Kubeflow could not compile the pipeline: {e}") from None
        finally:
            sys.modules.pop(module_path.stem, None)
        compiled = package.read_text(encoding="utf-8")
    header = f"# Kubeflow Pipelines spec of the nb2pipe pipeline '{name}', written by `nb2pipe export --to kubeflow`.\n"
    return {f"{OUT_DIR}/{name}.yaml": header + compiled}

