"""The export page renderer: a dashboard and its widgets' data to one self-contained HTML page.

renderer = PageRenderer(PageSpec(dashboard, version, filters, generated_at, format, options))
rendered = [renderer.widget(WidgetContent(widget, frame=frame)) for ...]  # one at a time
html = renderer.document(rendered)
"""

from server.exports.render.page import CSP, PageRenderer, PageSpec, RenderedWidget, WidgetContent

__all__ = ["CSP", "PageRenderer", "PageSpec", "RenderedWidget", "WidgetContent"]
