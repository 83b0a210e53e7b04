"""A stage's environment: what its kernel starts with (`env:`, `secret:`), what of it the stage's
fingerprint and lock entry hold, and the versions of what it imports (`track-env`).

1. `kernel_environment` gives the variables a stage's kernel process starts with: `env:NAME=VALUE`
   as written, `env:NAME` from the caller's environment, `secret:NAME` from the caller's
   environment, else from `.env` in the notebook's folder (KEY=VALUE lines, `#` comments,
   optional quotes and `export`; read, never executed; the environment wins). A variable that
   is nowhere is a SpecError naming it, its stage and where it was looked for.
2. `Runtime` is what the lock entry records of a stage's environment and what its fingerprint
   includes: each env value hashed with its name (never the value), the kernel its settings name,
   and with track-env the Python and the versions of the distributions of the top-level modules
   it imports. Secrets are in none of them. A stage without these settings records nothing
   more than before, so its fingerprint is unchanged.
3. `reasons` compares a lock entry with the runtime now: `kernel changed: a → b`,
   `env changed: NAME`, `environment changed: scikit-learn 1.6.1 → 1.7.0`.
4. The versions are asked of the kernel's own Python (its kernelspec's program, with the
   kernelspec's and the stage's env) in a short subprocess: a kernelspec may be another
   environment than nb2pipe's. Only stages with track-env pay for it, and only when something
   changed: the answer is kept with the modification times of the folders on that Python's
   sys.path (installing, upgrading or removing a distribution changes its folder's), so the
   sidebar's status polls do not start a Python each.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2pipe import model as m
from nb2pipe.errors import SpecError
from nb2pipe.hashing import hash_bytes
from nb2pipe.settings import effective

# keys of a lock entry (beside lockfile's code, params, deps, outs), written only when set
L_ENV, L_KERNEL, L_ENVIRONMENT = "env", "kernel", "environment"
DOTENV_FILE = ".env"
# reason kinds (state.py lists the others)
KERNEL_CHANGED, ENV_CHANGED, ENVIRONMENT_CHANGED = "kernel changed", "env changed", "environment changed"
NOT_INSTALLED = "(not installed)"
_PROBE_TIMEOUT_S = 60

_DOTENV_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*")
_IMPORT_LINE = re.compile(r"\s*import\s+(.+)|\s*from\s+([A-Za-z_][\w.]*)\s+import\b")


# --- what the kernel starts with ----------------------------------------------------------------


def parse_dotenv(text: str) -> dict[str, str]:
    """The KEY=VALUE lines of a `.env` file; `#` starts a comment outside quotes; a value in
    single or double quotes is taken as it is between them. Nothing is expanded or executed."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _DOTENV_LINE.fullmatch(line)
        if not match or line.lstrip().startswith("#"):
            continue
        name, value = match[1], match[2]
        if len(value) >= 2 and value[0] in "'\"" and value.endswith(value[0]):
            value = value[1:-1]
        elif value.startswith(("'", '"')):
            continue  # an unterminated quote: not a value nb2pipe can read
        else:
            value = re.sub(r"\s+#.*$", "", value) if not value.startswith("#") else ""
        values[name] = value
    return values


def dotenv_path(pipeline: m.Pipeline) -> Path:
    """`.env` in the folder of the pipeline's notebook (its wdir for a pipeline without one)."""
    folder = Path(pipeline.root, pipeline.source_notebook).parent if pipeline.source_notebook else Path(pipeline.root, pipeline.wdir)
    return Path(os.path.normpath(folder / DOTENV_FILE))


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of a `.env` file; {} when there is none."""
    try:
        return parse_dotenv(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"'{path}' cannot be read as a .env file ({e}); fix or remove it") from None


def env_values(stage: str, settings: m.Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The stage's `env:` variables with their values; a passed-through one that is not set is an error."""
    values: dict[str, str] = {}
    for name, value in settings.env:
        if value is None and name not in environ:
            raise SpecError(
                f"stage '{stage}': env:{name} passes {name} through from the environment, but it is not set; "
                f"set it, or write env:{name}=VALUE"
            )
        values[name] = environ[name] if value is None else value
    return values


def kernel_environment(
    pipeline: m.Pipeline, stage: str, settings: m.Settings, environ: Mapping[str, str] | None = None, dotenv: dict[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """(env values, secret values) the stage's kernel starts with. `dotenv`: the `.env`
    variables when read already (else read when a secret is not in the environment)."""
    environ = os.environ if environ is None else environ
    values = env_values(stage, settings, environ)
    secrets: dict[str, str] = {}
    for name in settings.secrets:
        if name not in environ and dotenv is None:
            dotenv = read_dotenv(dotenv_path(pipeline))
        value = environ.get(name, (dotenv or {}).get(name))
        if value is None:
            raise SpecError(
                f"stage '{stage}': secret '{name}' is set neither in the environment nor in '{dotenv_path(pipeline)}'; "
                f"set it in one of them"
            )
        secrets[name] = value
    return values, secrets


# --- what the lock and the fingerprint hold -------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    """What a stage's lock entry records of its environment (module docstring, 2)."""

    env: dict[str, str | None] = field(default_factory=dict)  # name → hash of its value (None: not set)
    kernel: str | None = None
    environment: dict[str, Any] | None = None  # {"python": version, "packages": {distribution: version}}

    def entry(self) -> dict[str, Any]:
        """The lock entry's keys for it: only those set (none for a stage without settings)."""
        data: dict[str, Any] = {}
        if self.env:
            data[L_ENV] = dict(sorted(self.env.items()))
        if self.kernel:
            data[L_KERNEL] = self.kernel
        if self.environment is not None:
            data[L_ENVIRONMENT] = self.environment
        return data


def env_hash(name: str, value: str) -> str:
    return hash_bytes(f"{name}\0{value}".encode())


def runtime(pipeline: m.Pipeline, stage: m.Stage, script: str | None, environ: Mapping[str, str] | None = None) -> Runtime:
    """The stage's runtime now (`script`: its text, for the modules it imports)."""
    environ = os.environ if environ is None else environ
    settings = effective(pipeline, stage)
    hashes = {
        name: (env_hash(name, environ[name]) if name in environ else None) if value is None else env_hash(name, value)
        for name, value in settings.env
    }
    environment = None
    if settings.track_env:
        kernel = settings.kernel or pipeline.kernel or "python3"
        env = {name: value for name, value in settings.env if value is not None}
        environment = probe_environment(kernel, imported_top_modules(script or ""), {**environ, **env})
    return Runtime(hashes, settings.kernel, environment)


def reasons(entry: Mapping[str, Any], now: Runtime) -> list[m.Reason]:
    """What changed in a stage's environment since its lock entry was written."""
    found: list[m.Reason] = []
    recorded_kernel = entry.get(L_KERNEL)
    if recorded_kernel != now.kernel:
        found.append(m.Reason(KERNEL_CHANGED, f"{recorded_kernel or 'default'} → {now.kernel or 'default'}"))
    recorded_env = entry.get(L_ENV) or {}
    for name in sorted(set(recorded_env) | set(now.env)):
        if name not in recorded_env or name not in now.env or recorded_env[name] != now.env[name]:
            found.append(m.Reason(ENV_CHANGED, name))
    if now.environment is not None:
        found.extend(m.Reason(ENVIRONMENT_CHANGED, change) for change in environment_changes(entry.get(L_ENVIRONMENT), now.environment))
    return found


def environment_changes(recorded: Any, now: dict[str, Any]) -> list[str]:
    """`python 3.11.4 → 3.11.9`, `scikit-learn 1.6.1 → 1.7.0`, ... (['not recorded'] when the
    lock entry has no environment: track-env was turned on since)."""
    if not isinstance(recorded, dict):
        return ["not recorded"]
    changes = []
    if recorded.get("python") != now.get("python"):
        changes.append(f"python {recorded.get('python')} → {now.get('python')}")
    before, after = recorded.get("packages") or {}, now.get("packages") or {}
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            changes.append(f"{name} {before.get(name, NOT_INSTALLED)} → {after.get(name, NOT_INSTALLED)}")
    return changes


# --- the versions of what a stage imports ---------------------------------------------------------


def imported_top_modules(script: str) -> tuple[str, ...]:
    """The top-level names of the absolute modules a stage script imports (`import a.b`, `from a
    import c` give 'a'), sorted; the script is a percent-format text or an .ipynb's JSON."""
    lines = script.splitlines()
    if script.lstrip().startswith("{"):
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            cells = json.loads(script).get("cells", [])
            lines = [line for c in cells if c.get("cell_type") == "code" for line in "".join(c.get("source", "")).splitlines()]
    found: set[str] = set()
    for line in lines:
        match = _IMPORT_LINE.match(line)
        if not match:
            continue
        names = [match[2]] if match[2] else [part.split(" as ")[0] for part in match[1].split("#")[0].strip("() ").split(",")]
        found.update(name.strip().split(".")[0] for name in names if name.strip() and re.match(r"[A-Za-z_]", name.strip()))
    return tuple(sorted(found))


_PROBE = """
import json, sys
from importlib import metadata
names = json.loads(sys.argv[1])
by_module = metadata.packages_distributions()
packages = {}
for module in names:
    for dist in by_module.get(module, []):
        try:
            packages[metadata.metadata(dist)["Name"] or dist] = metadata.version(dist)
        except Exception:
            pass
print(json.dumps({"python": sys.version.split()[0], "packages": dict(sorted(packages.items())), "path": sys.path}))
"""
_probed: dict[str, tuple[dict[str, int | None], dict[str, Any]]] = {}  # key → (folder mtimes, answer)


def probe_environment(kernel: str, modules: tuple[str, ...], environ: Mapping[str, str]) -> dict[str, Any]:
    """The Python version and the versions of the distributions providing `modules`, as the
    kernel `kernel` sees them ({"python": None, ...} for a kernel that is not Python)."""
    import subprocess  # only for stages with track-env: `status` of the others does not import it

    python, kernel_env = kernel_program(kernel)
    if python is None:
        return {"python": None, "packages": {}}
    env = {**environ, **kernel_env}
    key = json.dumps([python, modules, env], sort_keys=True)
    if key in _probed and _probed[key][0] == _mtimes(_probed[key][0]):
        return _probed[key][1]
    try:
        done = subprocess.run(
            [python, "-c", _PROBE, json.dumps(list(modules))], env=env, capture_output=True, text=True,
            timeout=_PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        data = json.loads(done.stdout)
        answer = {"python": str(data["python"]), "packages": dict(data["packages"])}
        _probed[key] = (_mtimes([os.path.abspath(p or ".") for p in data["path"]]), answer)
        return answer
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as e:
        raise SpecError(
            f"kernel '{kernel}': could not read the versions of its packages for track-env ({e}); check the kernel's Python"
        ) from None


def _mtimes(folders: Any) -> dict[str, int | None]:
    times: dict[str, int | None] = {}
    for folder in folders:
        try:
            times[folder] = os.stat(folder).st_mtime_ns
        except OSError:
            times[folder] = None
    return times


def kernel_program(kernel: str) -> tuple[str | None, dict[str, str]]:
    """(the Python a kernelspec runs, its kernel.json env); (None, {}) when it runs no Python.
    `python3` without a kernelspec of its own is this Python (ipykernel's native kernel)."""
    spec = _kernelspec(kernel)
    if spec is None:
        return (sys.executable, {}) if kernel == "python3" else (None, {})
    argv = spec.get("argv") or [""]
    program = str(argv[0])
    env = {str(k): str(v) for k, v in (spec.get("env") or {}).items()}
    if not Path(program).name.startswith("python") or "{" in program:
        return None, env
    import shutil

    if program in ("python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])):
        return sys.executable, env  # as jupyter_client's KernelManager runs these names
    return (program if os.path.isabs(program) else shutil.which(program) or program), env


def _kernelspec(kernel: str) -> dict[str, Any] | None:
    """The kernel.json of kernelspec `kernel`, found where jupyter_client looks (module run/kernels.py)."""
    from jupyter_core.paths import jupyter_path

    folders = [*jupyter_path("kernels"), os.path.join(os.environ.get("IPYTHONDIR") or os.path.expanduser("~/.ipython"), "kernels")]
    for folder in folders:
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if entry.name.lower() == kernel.lower() and os.path.isfile(os.path.join(entry.path, "kernel.json")):
                    with contextlib.suppress(OSError, ValueError):
                        data = json.loads(Path(entry.path, "kernel.json").read_text(encoding="utf-8"))
                        return data if isinstance(data, dict) else None
    return None
