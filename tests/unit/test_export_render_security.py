"""Hostile strings in every place a user can put text end up as text: the export page has no
script, no event handler, no external URL and no way out of its <style> or attributes."""

from __future__ import annotations

import pytest

from dashboard.v1 import common_pb2, widget_pb2
from server.exports.render import WidgetContent
from server.exports.render.charts import clean_svg
from tests.unit.export_render_dom import Node, loads_or_runs, parse
from tests.unit.export_render_samples import dashboard_of, frame_of, render, widget

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=http://x/a.png onerror=alert(2)>",
    "</style><script src=https://evil.example/x.js></script>",
    "\"'><svg onload=alert(3)>",
    "</svg><iframe src=//evil.example>",
    "x' style='background:url(http://evil.example/t)",
    "&lt;b&gt; &amp; ]]> <!-- --> <![CDATA[ x ]]>",
]


def texts(root: Node) -> list[str]:
    return [child for node in root.iter() for child in node.children if isinstance(child, str)]


@pytest.fixture(scope="module")
def hostile_page() -> tuple[str, Node]:
    h = HOSTILE
    columns = [("c" + h[i], t, v) for i, (t, v) in enumerate([("text", h), ("int8", list(range(len(h))))])]
    category, value = columns[0][0], columns[1][0]
    frame = frame_of(columns)
    geo = frame_of(
        [("lat", "float8", [48.0 + i for i in range(len(h))]), ("lon", "float8", [2.0] * len(h)), ("label", "text", h)]
    )
    widgets = [
        (
            widget(
                h[0],
                0,
                0,
                6,
                4,
                description=h[1],
                bar=widget_pb2.BarChartConfig(category_column=category, value_columns=[value], series_column=category),
            ),
            frame,
            None,
        ),
        (
            widget(
                h[2],
                6,
                0,
                6,
                4,
                line=widget_pb2.LineChartConfig(x_column=category, y_columns=[value], x_title=h[3], y_title=h[4]),
            ),
            frame,
            None,
        ),
        (
            widget(
                h[3],
                0,
                4,
                6,
                4,
                table=widget_pb2.TableConfig(
                    columns=[widget_pb2.TableColumn(column=category, label=h[5]), widget_pb2.TableColumn(column=value)]
                ),
            ),
            frame,
            None,
        ),
        (
            widget(
                h[4],
                6,
                4,
                6,
                4,
                heatmap=widget_pb2.HeatmapConfig(x_column=category, y_column=category, value_column=value),
            ),
            frame,
            None,
        ),
        (
            widget(
                h[5],
                0,
                8,
                6,
                4,
                map=widget_pb2.MapConfig(latitude_column="lat", longitude_column="lon", label_column="label"),
            ),
            geo,
            None,
        ),
        (widget(h[6], 6, 8, 3, 2, kpi=widget_pb2.KpiConfig(value_column=category)), frame, None),
        (widget(h[1], 9, 8, 3, 2, kpi=widget_pb2.KpiConfig(value_column=value)), None, h[2]),
        (
            widget(
                h[0] + " area",
                0,
                12,
                12,
                3,
                area=widget_pb2.AreaChartConfig(x_column=value, y_columns=[value], series_column=category),
            ),
            frame,
            None,
        ),
    ]
    board = dashboard_of(h[0], [w for w, _, _ in widgets], description="\n".join(h))
    filters = {h_name: common_pb2.ParameterValue(string_value=h[2]) for h_name in ["region"]}
    filters["period"] = common_pb2.ParameterValue(
        list_value=common_pb2.ParameterValueList(values=[common_pb2.ParameterValue(string_value=s) for s in h])
    )
    contents = [WidgetContent(w, frame=f, error=e) for w, f, e in widgets]
    document, _ = render(board, contents, filters=filters)
    return document, parse(document)


def test_no_script_handler_or_external_url(hostile_page: tuple[str, Node]) -> None:
    _, root = hostile_page
    assert loads_or_runs(root) == []
    assert [node.tag for node in root.find_all("style")] == ["style"]
    assert "<script" not in root.find("style").text and "</" not in root.find("style").text


def test_hostile_strings_come_back_as_text(hostile_page: tuple[str, Node]) -> None:
    _, root = hostile_page
    data = texts(root)
    assert root.find("title").text == HOSTILE[0]
    assert root.find("h1").text == HOSTILE[0]
    assert sorted(h2.text for h2 in root.find_all("h2", "widget-title")) == sorted(
        [HOSTILE[0], HOSTILE[2], HOSTILE[3], HOSTILE[4], HOSTILE[5], HOSTILE[6], HOSTILE[1], HOSTILE[0] + " area"]
    )
    for hostile in HOSTILE:
        # As a table cell, an SVG label and a filter value at least.
        assert data.count(hostile) >= 3, hostile
    assert root.find("p", "widget-error-message").text == HOSTILE[2]
    assert root.find("p", "widget-description").text == HOSTILE[1]
    assert [th.text for th in root.find("thead").find_all("th")] == [HOSTILE[5], "c" + HOSTILE[1]]


def test_the_only_tags_are_the_pages_own(hostile_page: tuple[str, Node]) -> None:
    _, root = hostile_page
    html_tags = {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "main",
        "header",
        "h1",
        "h2",
        "p",
        "dl",
        "dt",
        "dd",
        "div",
        "ul",
        "li",
        "span",
        "section",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
    svg_tags = {"svg", "g", "path", "text", "line", "rect", "defs", "lineargradient", "stop", "clippath", "circle"}
    found = {node.tag for node in root.iter()} - {"#document"}
    assert found <= html_tags | svg_tags, found - html_tags - svg_tags


def test_clean_svg_removes_what_vega_never_should_emit() -> None:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" onload="x()">'
        "<script>alert(1)</script><foreignObject><div>x</div></foreignObject>"
        '<image xlink:href="http://evil.example/i.png"/><a href="http://evil.example"><text>t</text></a>'
        '<defs><clipPath id="clip1"><rect/></clipPath></defs>'
        '<g clip-path="url(#clip1)" fill="url(http://evil.example/p#x)" onclick="y()"><use href="#clip1"/>'
        '<path d="M0,0" style="fill:red"/></g></svg>'
    )
    cleaned = clean_svg(svg, "w1")
    assert cleaned == (
        '<svg><defs><clipPath id="w1-clip1"><rect /></clipPath></defs>'
        '<g clip-path="url(#w1-clip1)"><path d="M0,0" style="fill:red" /></g></svg>'
    )


def test_the_checker_sees_what_it_looks_for() -> None:
    # The oracle above must not pass vacuously.
    root = parse(
        '<html><head><style>@import "x.css"; p{background:url(http://y/b.png)}</style></head><body>'
        '<img src="http://x/a.png"><div style="background:url(//y/c)"></div><a href="https://z">l</a>'
        '<svg onload="x()"><use href="#ok"/></svg><meta http-equiv="refresh" content="0;url=http://q"></body></html>'
    )
    assert sorted(loads_or_runs(root)) == sorted(
        [
            "<img> element",
            "src='http://x/a.png' on <img>",
            "url(//y/c) in a style attribute",
            "href='https://z' on <a>",
            "onload handler on <svg>",
            "meta refresh",
            "url(http://y/b.png) in <style>",
            "@import in <style>",
        ]
    )
