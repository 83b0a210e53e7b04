"""MkDocs hook: renders docs/openapi.yaml as Markdown where a page says `<!-- openapi: FILE -->`.

The REST API page is then plain text on the site (searchable, readable without JavaScript, built
offline), and always the API that openapi.yaml describes: each route and method with its summary
and description, its parameters, its request body and its responses, then the shared schemas.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MARKER = re.compile(r"<!--\s*openapi:\s*(\S+)\s*-->")
METHODS = ("get", "post", "put", "patch", "delete")


def on_page_markdown(markdown: str, page, config, files) -> str:
    def render(match: re.Match) -> str:
        spec = yaml.safe_load((Path(config["docs_dir"]) / match.group(1)).read_text(encoding="utf-8"))
        return render_spec(spec)

    return MARKER.sub(render, markdown)


def render_spec(spec: dict[str, Any]) -> str:
    lines = [_text(spec.get("info", {}).get("description", "")), ""]
    for route, item in spec.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method in item:
                lines += _operation(spec, method, route, item[method], shared)
    schemas = spec.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Schemas", ""]
        for name, schema in schemas.items():
            lines += [f"### {name}", "", *_properties(spec, schema), ""]
    return "\n".join(lines)


def _operation(spec: dict, method: str, route: str, op: dict, shared: list) -> list[str]:
    lines = [f"## `{method.upper()} {route}`", "", _text(op.get("summary", "")), ""]
    if op.get("description"):
        lines += [_text(op["description"]), ""]
    parameters = [_resolve(spec, p) for p in [*shared, *op.get("parameters", [])]]
    if parameters:
        lines += ["**Parameters**", "", "| name | in | type | required | description |", "|---|---|---|---|---|"]
        for p in parameters:
            lines.append(
                f"| `{p['name']}` | {p.get('in', '')} | {_type(spec, p.get('schema', {}))} | "
                f"{'yes' if p.get('required') else 'no'} | {_cell(p.get('description', ''))} |"
            )
        lines.append("")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body:
        lines += ["**Request body** (JSON)", "", *_properties(spec, body), ""]
    lines += ["**Responses**", "", "| status | meaning | body |", "|---|---|---|"]
    for status, response in op.get("responses", {}).items():
        response = _resolve(spec, response)
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        lines.append(f"| {status} | {_cell(response.get('description', ''))} | {_type(spec, schema) if schema else ''} |")
    return [*lines, ""]


def _properties(spec: dict, schema: dict) -> list[str]:
    schema = _resolve(spec, schema)
    properties = schema.get("properties")
    if not properties:
        return [f"{_type(spec, schema)}"]
    required = set(schema.get("required", []))
    lines = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in properties.items():
        lines.append(
            f"| `{name}` | {_type(spec, prop)} | {'yes' if name in required else 'no'} | {_cell(prop.get('description', ''))} |"
        )
    return lines


def _type(spec: dict, schema: dict | None) -> str:
    """A schema in a few words: `string`, `array of Job`, `one of: a, b` (linking named schemas)."""
    if not schema:
        return ""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "allOf" in schema:
        text = " and ".join(_type(spec, s) for s in schema["allOf"])
    elif schema.get("type") == "array":
        text = f"array of {_type(spec, schema.get('items', {})) or 'anything'}"
    elif "enum" in schema:
        text = "one of: " + ", ".join(f"`{v}`" for v in schema["enum"])
    elif schema.get("type") == "object" and schema.get("properties"):
        text = "object with " + ", ".join(f"`{k}`" for k in schema["properties"])
    else:
        text = str(schema.get("type", "anything"))
    if "default" in schema:
        text += f" (default `{schema['default']}`)"
    return text + (" or null" if schema.get("nullable") else "")


def _resolve(spec: dict, item: dict) -> dict:
    """`item`, or what its local `$ref` (#/components/...) points to."""
    for _ in range(10):
        if not (isinstance(item, dict) and str(item.get("$ref", "")).startswith("#/")):
            break
        target: Any = spec
        for part in item["$ref"][2:].split("/"):
            target = target[part]
        item = target
    return item


def _text(text: str) -> str:
    return " ".join(str(text).split())


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|")
