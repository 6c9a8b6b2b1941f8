"""The API reference at `/schema` (and `/schema/swagger`): Swagger UI served by the API itself.

Litestar's render plugins load their scripts from a CDN, so without internet the page is
blank. Here the script and style are the `swagger-ui-dist` release that the root
package-lock.json pins, copied into docs_assets/ by `npm run vendor` (committed, so the
Docker image needs no node_modules) and served under `<openapi path>/swagger-ui/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

from api.auth import PUBLIC

if TYPE_CHECKING:
    from litestar.router import Router

ASSETS_DIR = Path(__file__).resolve().parent / "docs_assets"
ASSETS_PATH = "/swagger-ui"
# an empty icon: otherwise the browser asks for /favicon.ico (and Litestar's default is a CDN image)
NO_FAVICON = "<link rel='icon' href='data:,'>"


class OfflineSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Litestar's Swagger UI page, with its assets served from docs_assets/ by the schema router."""

    def __init__(self, path: str = "/swagger", **kwargs: Any) -> None:
        # the asset URLs (CDN ones until then) are replaced in receive_router, once the schema
        # router's path is known
        super().__init__(path=path, favicon=NO_FAVICON, **kwargs)

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(
            create_static_files_router(
                path=ASSETS_PATH,
                directories=[ASSETS_DIR],
                include_in_schema=False,
                send_as_attachment=False,
                opt={PUBLIC: True},
            )
        )
        # absolute, because the same page is served at /schema and at /schema/swagger
        base = router.path.rstrip("/") + ASSETS_PATH
        self.js_url = f"{base}/swagger-ui-bundle.js"
        self.css_url = f"{base}/swagger-ui.css"
        self.standalone_preset_js_url = f"{base}/swagger-ui-standalone-preset.js"
