"""The files export generates: a checksum in each, YAML every reader reads alike, careful writes.

1. Every generated file but params.yaml carries a checksum of its own text (`stamp`), so a hand
   edit is noticed (`is_pristine`): `write_files` refuses to overwrite it, or any file nb2pipe did
   not write, without `force`, and leaves unchanged files untouched.
2. params.yaml and the DVC file are YAML that YAML 1.1 (PyYAML) and 1.2 (ruamel, DVC) readers
   read the same way (`dump_portable_yaml`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from nb2pipe import model as m
from nb2pipe.errors import OverwriteError
from nb2pipe.hashing import atomic_write, hash_bytes

GITIGNORE = ".gitignore"  # written once; the user may add to it
GITIGNORE_TEXT = "# Written by nb2pipe export: run state, caches and executed notebooks stay out of git.\n.nb2pipe/\nruns/\n"
CHECKSUM_TOKEN = "@NB2PIPE_CHECKSUM@"
CHECKSUM_AT = f"nb2pipe-checksum: {CHECKSUM_TOKEN}"  # where a text file carries its checksum
CHECKSUM_AT_IPYNB = f'"checksum": "{CHECKSUM_AT}"'  # ... and a notebook (no cell text can hold it)
_CHECKSUM_RE = re.compile(r"nb2pipe-checksum: ([0-9a-f]{16})")


# --- 1. checksums ---------------------------------------------------------------------------


def _checksum(text: str) -> str:
    return hash_bytes(text.encode())[len("blake3:") :][:16]


def stamp(text: str, where: str) -> str:
    """`text` with its checksum put at the first occurrence of `where` (which holds the token);
    any other occurrence of the token (in a cell, say) is the notebook's own text and stays."""
    return text.replace(where, where.replace(CHECKSUM_TOKEN, _checksum(text)), 1)


def is_pristine(text: str) -> bool:
    """True when `text` carries an nb2pipe checksum that still matches it (no hand edits). Any
    checksum-like text in it may be the real one: a cell's text could look like one, too."""
    for match in _CHECKSUM_RE.finditer(text):
        unstamped = text[: match.start(1)] + CHECKSUM_TOKEN + text[match.end(1) :]
        if _checksum(unstamped) == match.group(1):
            return True
    return False


def write_files(
    folder: Path, files: dict[str, str], *, force: bool = False, check: bool = False
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Write `files` under `folder`, touching only files whose content changes.

    Returns (written, unchanged, differing, removed). With `check`, nothing is written and
    `differing` lists what an export would change. Stage scripts of stages that no longer exist
    are removed when nb2pipe wrote them.
    """
    written: list[str] = []
    unchanged: list[str] = []
    differing: list[str] = []
    removed: list[str] = []
    stale_scripts = _old_stage_scripts(folder, files)
    for rel, text in files.items():
        path = folder / rel
        old = _read_text(path)
        user_owned = rel == GITIGNORE or (rel == m.PARAMS_FILE and check and not is_pristine(old or ""))
        if old == text or (user_owned and old is not None):
            unchanged.append(rel)
            continue
        differing.append(rel)
        if check:
            continue
        if old is not None and rel != m.PARAMS_FILE and not force and not is_pristine(old):
            raise OverwriteError(
                f"'{path}' was edited by hand (or not written by nb2pipe); move your changes into the "
                "notebook, or re-export with --force to overwrite it"
            )
    for rel in stale_scripts:
        differing.append(rel)
    if check:
        return written, unchanged, differing, removed
    for rel in differing:
        path = folder / rel
        if rel in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, files[rel])
            written.append(rel)
        else:
            path.unlink()
            removed.append(rel)
    return written, unchanged, differing, removed


def _old_stage_scripts(folder: Path, files: dict[str, str]) -> list[str]:
    stages_dir = folder / m.STAGES_DIR
    if not stages_dir.is_dir():
        return []
    old = []
    for path in sorted(stages_dir.iterdir()):
        rel = f"{m.STAGES_DIR}/{path.name}"
        if rel not in files and path.suffix in (".py", ".ipynb") and is_pristine(_read_text(path) or ""):
            old.append(rel)
    return old


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


# --- 2. portable YAML -----------------------------------------------------------------------


class _PortableDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """PyYAML's safe dumper, quoting every string that some YAML reader could take for another type."""


# A plain scalar starting like a number (1e3, 0o17, .5, +1, 2001-12-14, 1:20, 1_000), or a word some
# YAML version reads as a bool, null, infinity, NaN, merge key or value key. PyYAML quotes only what
# YAML 1.1 resolves; DVC reads YAML 1.2 (1e3 is a float there), so these are always quoted.
_AMBIGUOUS_SCALAR = re.compile(
    r"^(?:[-+]?\.?[0-9].*|[-+]?\.(?:inf|nan)|~|null|true|false|yes|no|on|off|y|n|=|<<|)$", re.IGNORECASE | re.DOTALL
)


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    if _AMBIGUOUS_SCALAR.match(text) and "\n" not in text:
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="'")
    return dumper.represent_str(text)


_PortableDumper.add_representer(str, _represent_str)


def dump_portable_yaml(data: Any, block: bool = False) -> str:
    """Like spec.dump_yaml, and read the same way by YAML 1.1 (PyYAML) and 1.2 (ruamel, DVC) readers.
    `block`: every list and mapping in block style (else the innermost ones are flow style)."""
    return yaml.dump(
        data, Dumper=_PortableDumper, sort_keys=False, default_flow_style=False if block else None,
        allow_unicode=True, width=10_000,
    )


def portable_scalar(text: str) -> str:
    """`text` as a one-line YAML scalar for a template, quoted only where some YAML reader needs it."""
    entry = yaml.dump({"k": text}, Dumper=_PortableDumper, default_flow_style=False, allow_unicode=True, width=10_000)
    return entry[len("k: ") :].rstrip("\n")
