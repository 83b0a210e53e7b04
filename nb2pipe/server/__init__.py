"""The jupyter_server extension: nb2pipe's REST API under `<base_url>/nb2pipe/`.

Enabled by default through `jupyter-config/jupyter_server_config.d/nb2pipe.json`, which the wheel
installs; the JupyterLab extension talks only to these routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nb2pipe.server"}]


def _load_jupyter_server_extension(server_app: ServerApp) -> None:
    from nb2pipe.server.debughandlers import setup_debug_handlers
    from nb2pipe.server.handlers import setup_handlers
    from nb2pipe.server.verifyhandlers import setup_verify_handlers

    setup_handlers(server_app.web_app, server_app.root_dir)
    setup_verify_handlers(server_app.web_app)
    setup_debug_handlers(server_app.web_app)
    server_app.log.info("nb2pipe server extension loaded: REST API at %snb2pipe/", server_app.base_url)
