"""The documentation site builds with `mkdocs build --strict` (a broken link or a missing page is
an error), and its REST API page shows every route and method of docs/openapi.yaml."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("material", reason="the docs extra is not installed: pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def test_every_page_of_the_nav_is_built(site):
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())

    def pages(nav):
        for entry in nav:
            for value in entry.values():
                yield from pages(value) if isinstance(value, list) else [value]

    for page in pages(config["nav"]):
        built = site / ("index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html")
        assert built.is_file(), page


def test_the_rest_api_page_shows_every_route_of_openapi_yaml(site):
    spec = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", "", (site / "rest-api" / "index.html").read_text())).split())
    for route, item in spec["paths"].items():
        for method in ("get", "post", "put", "patch", "delete"):
            if method in item:
                assert f"{method.upper()} {route}" in text, (method, route)
                assert " ".join(item[method]["summary"].replace("`", "").split()) in text
    for name in spec["components"]["schemas"]:
        assert name in text
