"""`nb2pipe verify` on every notebook of the shared corpus: a table of results and the counts.

For each notebook listed in the corpus's PROVENANCE.tsv (or every *.ipynb there), in a temporary
folder holding a copy of it (and the support files it needs), `python -m nb2pipe verify --json`:

- equal: exit 0 (with how many cells and files were compared, and how many were not comparable);
- differs: exit 1, with the first difference (or "nothing compared");
- does not run here: exit 2 because the notebook fails on its own (no network, a missing module);
- refused: exit 2 for any other error (nb2pipe refuses it by design, or a bug), with the error line.

Run from the checkout, with the virtualenv nb2pipe is installed in (about 6 minutes for the 28
notebooks with `--parallel 2`, which verifies two at once; `-k TEXT` only the notebooks whose file
name holds TEXT):

    .venv-ci/bin/python benchmarks/verify_corpus.py [--parallel 2] [-k kale]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
TIMEOUT = 1800  # seconds for one notebook

# what a notebook needs besides a copy of itself (as tests/test_equivalence.py's EXTRA_NEEDS)
PARAMS = {"papermill__nteract__papermill__binder_cli-simple_cli_example.ipynb": ["-p", "binder_dir=."]}
SUPPORT = {
    "papermill__nteract__papermill__binder_cli-simple_cli_example.ipynb": [
        ("papermill__nteract__papermill__binder_cli-simple_simple_input.ipynb", "cli-simple/simple_input.ipynb")
    ]
}


@dataclass(frozen=True)
class Result:
    notebook: str
    result: str  # equal, differs, does not run here, refused
    detail: str
    seconds: float


def notebooks() -> list[str]:
    provenance = CORPUS / "PROVENANCE.tsv"
    if provenance.is_file():
        with open(provenance, newline="", encoding="utf-8") as f:
            return sorted(row["file"] for row in csv.DictReader(f, delimiter="\t"))
    return sorted(p.name for p in CORPUS.glob("*.ipynb"))


def verify_one(name: str) -> Result:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="verify-corpus-") as folder:
        for source, relative in SUPPORT.get(name, []):
            (Path(folder) / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(CORPUS / source, Path(folder) / relative)
        shutil.copyfile(CORPUS / name, Path(folder) / name)
        env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, "-m", "nb2pipe", "verify", name, "--json", *PARAMS.get(name, [])]
        try:
            done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return Result(name, "refused", f"still running after {TIMEOUT} s", time.monotonic() - started)
    result = Result(name, *judge(done.returncode, done.stdout, done.stderr), time.monotonic() - started)
    print(f"{result.result:>17}  {name}", file=sys.stderr, flush=True)  # progress, as each one ends
    return result


def judge(code: int, out: str, err: str) -> tuple[str, str]:
    """(result, detail) from verify's exit status and output."""
    if code in (0, 1) and out.strip().startswith("{"):
        report = json.loads(out)
        if code == 0:
            return "equal", report["summary"]
        first = report["differences"][0]["message"] if report["differences"] else report["summary"]
        return "differs", first
    error = next((line[len("error: ") :] for line in err.splitlines() if line.startswith("error: ")), err.strip()[-300:])
    if "fails when run top to bottom" in error:
        return "does not run here", error
    return "refused", error or f"exit {code}"


def table(results: list[Result]) -> str:
    rows = [("notebook", "result", "seconds", "detail")]
    rows += [(r.notebook, r.result, f"{r.seconds:.0f}", r.detail.replace("|", "\\|")) for r in results]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|---|---|---:|---|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=1, help="notebooks verified at once (default 1)")
    parser.add_argument("-k", dest="only", default="", help="only the notebooks whose file name holds this text")
    args = parser.parse_args(argv)
    if not CORPUS.is_dir():
        print(f"the shared corpus is not at {CORPUS}", file=sys.stderr)
        return 2
    names = [n for n in notebooks() if args.only in n and (CORPUS / n).is_file()]
    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        results = list(pool.map(verify_one, names))
    print(table(results))
    counts = {kind: sum(r.result == kind for r in results) for kind in ("equal", "differs", "does not run here", "refused")}
    print("\n" + ", ".join(f"{n} {kind}" for kind, n in counts.items()) + f" ({len(results)} notebooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
