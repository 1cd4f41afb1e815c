"""The demo dashboard "Hospital operations" exactly as `tessera dev` serves it: loaded into a fresh
database of its own, its widgets' data read through the widget-data domain as the demo admin,
rendered by the export renderer. `python -m tests.visual.demo_export OUT.pdf` prints it and
reports the checks (what the issue's before/after figures were measured with)."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path

from sqlalchemy import select

from dashboard.v1 import dashboard_pb2, export_pb2, widget_pb2
from server.app import build_app
from server.config import Settings
from server.dashboards.versions import load_snapshot
from server.db.migrate import upgrade
from server.db.schema import dashboards
from server.devtools.demo import DEMO, load_demo
from server.exports.render import PageRenderer, PageSpec, WidgetContent
from tests.harness.services import provision

__all__ = ["demo_page"]


async def _demo_contents(settings: Settings) -> tuple[dashboard_pb2.Dashboard, int, list[WidgetContent]]:
    await load_demo(settings)
    app = build_app(settings)
    try:
        async with app.db.read() as conn:
            row = (
                await conn.execute(
                    select(dashboards.c.id, dashboards.c.published_version).where(
                        dashboards.c.metadata["demo"].as_boolean(), dashboards.c.published_version > 0
                    )
                )
            ).one()
            board = await load_snapshot(conn, row.id, row.published_version)
        contents = []
        for widget in board.widgets:
            request = widget_pb2.GetWidgetDataRequest(widget_id=widget.id, dashboard_version=row.published_version)
            data = await app.widget_data.get(DEMO, request)
            contents.append(WidgetContent(widget=widget, frame=data.frame))
        return board, row.published_version, contents
    finally:
        await app.close()


def demo_page(export_format: int = export_pb2.EXPORT_FORMAT_PDF) -> str:
    """The demo dashboard's export page (HTML), from a database created and dropped for it."""
    with provision() as services:
        settings = Settings(
            database_url=services.database_url,
            redis_url=services.redis_url,
            redis_prefix=services.redis_prefix,
            log_level="WARNING",
        )
        upgrade(settings.database_url)
        board, version, contents = asyncio.run(_demo_contents(settings))
    renderer = PageRenderer(
        PageSpec(
            dashboard=board,
            version=version,
            filters={},
            generated_at=dt.datetime.now(dt.UTC),
            format=export_format,
            options=export_pb2.ExportOptions(),
        )
    )
    return renderer.document([renderer.widget(content) for content in contents])


def main() -> None:
    from tests.visual.report import print_report

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/visual/demo.pdf")
    out.parent.mkdir(parents=True, exist_ok=True)
    html = demo_page()
    out.with_suffix(".html").write_text(html, encoding="utf-8")
    asyncio.run(print_report(html, export_pb2.ExportOptions(), out))


if __name__ == "__main__":
    main()
