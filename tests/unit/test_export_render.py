"""The export page renderer (server.exports.render): document structure, bands and grid placement,
every widget type with its data, error and empty states, long tables, scaling, unicode. Charts
are drawn by the real vl-convert; no browser here (see test_export_render_chromium.py)."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal

import pytest

from dashboard.v1 import common_pb2, export_pb2, widget_pb2
from server.exports.options import geometry, normalized
from server.exports.render import CSP, PageRenderer, PageSpec, WidgetContent
from server.exports.render.charts import HEATMAP_SCHEMES, ChartError, bar_spec, render_svg
from server.exports.render.layout import PAGE_SLACK_PX, bands, placement_of
from server.exports.render.values import parameter_text
from tests.unit.export_render_dom import Node, parse
from tests.unit.export_render_samples import (
    FILTERS,
    GENERATED_AT,
    dashboard_of,
    frame_of,
    masked,
    render,
    sample_dashboard,
    widget,
)


def cards(root: Node) -> dict[str, Node]:
    """Widget cards by title."""
    return {node.find("h2", "widget-title").text: node for node in root.find_all("section", "widget")}


def marks(card: Node, mark: str) -> list[Node]:
    """The drawn marks of one kind (rect, symbol, line, area, text) in a card's chart."""
    return [
        child
        for group in card.find_all("g", f"mark-{mark}")
        if "role-mark" in group.attrs["class"].split()
        for child in group.children
        if isinstance(child, Node)
    ]


def one(board_widget: widget_pb2.Widget, frame: common_pb2.DataFrame) -> Node:
    """The card of a single widget rendered on its own page."""
    document, _ = render(dashboard_of("One", [board_widget]), [WidgetContent(board_widget, frame=frame)])
    return parse(document).find("section", "widget")


# ---------------------------------------------------------------------------------------------
# The document


@pytest.fixture(scope="module")
def sample() -> tuple[str, Node]:
    board, contents = sample_dashboard()
    document, _ = render(board, contents, filters=FILTERS)
    return document, parse(document)


def test_every_widget_title_is_in_the_document_exactly_once(sample: tuple[str, Node]) -> None:
    document, root = sample
    board, _ = sample_dashboard()
    for board_widget in board.widgets:
        assert document.count(html.escape(board_widget.title)) == 1, board_widget.title
    assert sorted(cards(root)) == sorted(w.title for w in board.widgets)


def test_header_has_title_description_version_filters_and_time(sample: tuple[str, Node]) -> None:
    _, root = sample
    header = root.find("header", "report-header")
    assert header.find("h1").text == "Hospital operations — Île-de-France"
    assert header.find("h1").attrs["dir"] == "auto"
    assert "Figures are provisional until month end." in header.find("p", "report-description").text
    meta = {div.find("dt").text: div.find("dd").text for div in header.find("dl").find_all("div")}
    assert meta == {"Version": "7", "Generated": "2026-03-14 09:26:53 UTC"}
    chips = [li.text for li in header.find_all("li", "filter")]
    assert chips == ["Region = Île-de-France", "Period = 2026-03-01 \u2013 2026-03-14"]


def test_head_carries_the_csp_before_any_style(sample: tuple[str, Node]) -> None:
    _, root = sample
    head = root.find("head")
    elements = [child for child in head.children if isinstance(child, Node)]
    assert [e.tag for e in elements] == ["meta", "meta", "title", "style"]
    assert elements[1].attrs == {"http-equiv": "Content-Security-Policy", "content": CSP}
    assert CSP == "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:"


def test_widgets_are_grouped_into_bands_and_placed_on_the_grid(sample: tuple[str, Node]) -> None:
    _, root = sample
    band_titles = [
        [c.find("h2").text for c in band.find_all("section", "widget")] for band in root.find_all("div", "band")
    ]
    assert band_titles == [
        ["Admissions today", "Bed occupancy", "Average length of stay", "Revenue (month)"],
        ["Daily admissions by ward", "Beds by department"],
        ["Bed-days by ward (stacked)", "Emergency arrivals by hour"],
        ["Clinics by patient volume", "Current inpatients"],
        ["Readmissions (30 days)", "Transfers pending", "病床稼働率 · معدل الإشغال"],
    ]
    band = root.find_all("div", "band")[1]
    assert band.attrs["style"] == "grid-template-rows:repeat(4, var(--row))"
    cells = [cell.attrs["style"] for cell in band.find_all("div", "cell")]
    assert cells == ["grid-column:1 / span 8;grid-row:1 / span 4", "grid-column:9 / span 4;grid-row:1 / span 4"]
    css = root.find("style").text
    assert ".band {" in css and "break-inside: avoid;" in css.split(".band {", 1)[1].split("}")[0]
    assert "@page{size:297.0mm 210.0mm;margin:10.0mm 10.0mm 12.0mm 10.0mm}" in css


def test_bands_chain_overlapping_rows() -> None:
    # b overlaps a, c overlaps b only: one band; d starts where c ends: a new band.
    items = {
        "a": widget("a", 0, 0, 4, 2, kpi=widget_pb2.KpiConfig(value_column="v")),
        "b": widget("b", 4, 1, 4, 3, kpi=widget_pb2.KpiConfig(value_column="v")),
        "c": widget("c", 8, 3, 4, 2, kpi=widget_pb2.KpiConfig(value_column="v")),
        "d": widget("d", 0, 5, 12, 1, kpi=widget_pb2.KpiConfig(value_column="v")),
    }
    grouped = bands(items, lambda name: placement_of(items[name]))
    assert grouped == [["a", "b", "c"], ["d"]]


def test_kpi_values_are_the_exact_texts_or_formatted(sample: tuple[str, Node]) -> None:
    _, root = sample
    by_title = cards(root)
    values = {
        title: card.find("p", "kpi-value").text for title, card in by_title.items() if card.find_all("p", "kpi-value")
    }
    assert values == {
        "Admissions today": "128",
        "Bed occupancy": "91.3%",
        "Average length of stay": "4.3500",
        "Revenue (month)": "$1,284,730",
        "病床稼働率 · معدل الإشغال": "0.30000000000000004",
    }
    assert by_title["Admissions today"].find("p", "kpi-comparison").text == "▲ +11 (+9.4%) vs 117"
    assert "kpi-up" in by_title["Admissions today"].find("p", "kpi-comparison").attrs["class"]
    assert by_title["Revenue (month)"].find("p", "kpi-comparison").text == "▼ -$25,470 (-1.9%) vs $1,310,200"
    # 91.26 >= 85: the red band; the card carries the accent and the value a readable red.
    occupancy = by_title["Bed occupancy"]
    assert occupancy.attrs["style"] == "--threshold:#dc2626"
    assert "color:#dc2626" in occupancy.find("p", "kpi-value").attrs["style"]


@pytest.mark.parametrize(
    ("type_name", "value", "number_format", "expected"),
    [
        ("int8", 9_007_199_254_740_993, None, "9007199254740993"),
        ("numeric", Decimal("12.3400"), None, "12.3400"),
        ("numeric", Decimal("NaN"), widget_pb2.NumberFormat(decimals=2), "NaN"),
        ("float8", 1e20, None, "1e+20"),
        ("float8", float("inf"), None, "Infinity"),
        ("float8", 2.675, widget_pb2.NumberFormat(decimals=2), "2.68"),
        ("float8", -0.001, widget_pb2.NumberFormat(decimals=2), "0.00"),
        ("int8", -1234567, widget_pb2.NumberFormat(prefix="$", thousands_separator=True), "-$1,234,567"),
        ("numeric", Decimal("0.5"), widget_pb2.NumberFormat(suffix=" beds"), "1 beds"),
        ("numeric", Decimal("1234.5"), widget_pb2.NumberFormat(decimals=3, thousands_separator=True), "1,234.500"),
        ("text", "n/a", widget_pb2.NumberFormat(decimals=2), "n/a"),
        ("date", dt.date(2026, 1, 2), None, "2026-01-02"),
    ],
)
def test_kpi_value_text(
    type_name: str, value: object, number_format: widget_pb2.NumberFormat | None, expected: str
) -> None:
    config = widget_pb2.KpiConfig(value_column="v")
    if number_format is not None:
        config.format.CopyFrom(number_format)
    card = one(widget("K", 0, 0, 4, 2, kpi=config), frame_of([("v", type_name, [value])]))
    assert card.find("p", "kpi-value").text == expected


def test_kpi_null_value_shows_a_dash() -> None:
    card = one(widget("K", 0, 0, 4, 2, kpi=widget_pb2.KpiConfig(value_column="v")), frame_of([("v", "int8", [None])]))
    assert card.find("p", "kpi-value").text == "—"


# ---------------------------------------------------------------------------------------------
# Charts


def test_bar_chart_draws_one_bar_per_row(sample: tuple[str, Node]) -> None:
    _, root = sample
    bars = marks(cards(root)["Beds by department"], "rect")
    assert len(bars) == 5
    labels = [t.text for t in cards(root)["Beds by department"].find_all("text")]
    assert {"Emergency", "Surgery", "Maternity", "ICU", "Geriatrics"} <= set(labels)
    # The card's title names the categories; axis titles only where the chart has room for them.
    assert "department" not in labels


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("orientation", [widget_pb2.BAR_ORIENTATION_VERTICAL, widget_pb2.BAR_ORIENTATION_HORIZONTAL])
def test_bar_chart_with_two_value_columns(stacked: bool, orientation: int) -> None:
    config = widget_pb2.BarChartConfig(
        category_column="c", value_columns=["2025", "2026"], orientation=orientation, stacked=stacked
    )
    frame = frame_of([("c", "text", ["a", "b", "c"]), ("2025", "int8", [1, 2, 3]), ("2026", "int8", [4, 5, 6])])
    card = one(widget("Bars", 0, 0, 6, 4, bar=config), frame)
    assert len(marks(card, "rect")) == 6
    legend = [
        t.text
        for t in card.find_all("text")
        if "role-legend-label" in (t.parent.attrs.get("class", "") if t.parent else "")
    ]
    assert legend == ["2025", "2026"]
    # Stacked bars pile up on the value axis; grouped ones sit side by side in each category.
    spec = bar_spec(config, frame, 400, 300)
    horizontal = orientation == widget_pb2.BAR_ORIENTATION_HORIZONTAL
    value_axis, offset = ("x", "yOffset") if horizontal else ("y", "xOffset")
    assert spec["encoding"][value_axis]["stack"] == ("zero" if stacked else None)
    assert (offset in spec["encoding"]) is not stacked


def test_line_chart_one_line_per_series_and_points(sample: tuple[str, Node]) -> None:
    _, root = sample
    card = cards(root)["Daily admissions by ward"]
    assert len(marks(card, "line")) == 3
    assert len(marks(card, "symbol")) == 42  # show_points: 14 days x 3 wards
    assert {"Cardiology", "Oncology", "Pädiatrie"} <= {t.text for t in card.find_all("text")}


def test_line_chart_with_several_y_columns_and_titles() -> None:
    config = widget_pb2.LineChartConfig(x_column="t", y_columns=["in", "out"], x_title="Hour", y_title="Patients")
    frame = frame_of(
        [
            ("t", "timestamptz", [dt.datetime(2026, 1, 1, h, tzinfo=dt.UTC) for h in range(6)]),
            ("in", "int8", [1, 4, 2, 5, 3, 6]),
            ("out", "numeric", [Decimal("0.5"), None, Decimal("2"), Decimal("1"), Decimal("3"), Decimal("2")]),
        ]
    )
    card = one(widget("Flow", 0, 0, 6, 4, line=config), frame)
    texts = {t.text for t in card.find_all("text")}
    assert {"Hour", "Patients", "in", "out"} <= texts
    assert len(marks(card, "line")) == 2


def test_area_chart_stacked_and_overlapping(sample: tuple[str, Node]) -> None:
    _, root = sample
    assert len(marks(cards(root)["Bed-days by ward (stacked)"], "area")) == 3


def test_heatmap_draws_one_cell_per_row_with_its_scheme(sample: tuple[str, Node]) -> None:
    _, root = sample
    card = cards(root)["Emergency arrivals by hour"]
    assert len(marks(card, "rect")) == 7 * 12
    gradient = card.find("lineargradient")  # html.parser lower-cases names
    # Vega's "oranges" starts at #fdd8b3.
    assert gradient.find("stop").attrs["stop-color"] == "rgb(253, 216, 179)"
    fills = {node.attrs.get("fill") for node in card.iter() if node.attrs.get("fill", "").startswith("url(")}
    assert fills == {f"url(#{gradient.attrs['id']})"}


def test_map_draws_one_point_per_row_with_labels(sample: tuple[str, Node]) -> None:
    _, root = sample
    card = cards(root)["Clinics by patient volume"]
    assert len(marks(card, "symbol")) == 7
    assert {"Paris Nord", "Lyon Centre", "Strasbourg"} <= {t.text for t in marks(card, "text")}


def test_map_leaves_out_impossible_coordinates() -> None:
    config = widget_pb2.MapConfig(latitude_column="lat", longitude_column="lon")
    frame = frame_of([("lat", "float8", [10.0, 95.0, None, 12.0]), ("lon", "float8", [20.0, 0.0, 1.0, 400.0])])
    assert len(marks(one(widget("Map", 0, 0, 6, 4, map=config), frame), "symbol")) == 1


def test_chart_text_uses_the_page_font_stack(sample: tuple[str, Node]) -> None:
    _, root = sample
    families = {node.attrs["font-family"] for node in root.find_all("text")}
    assert families == {'"DejaVu Sans", "Liberation Sans", "Noto Sans CJK SC", sans-serif'}


def test_chart_ids_are_unique_across_the_page() -> None:
    config = widget_pb2.HeatmapConfig(x_column="x", y_column="y", value_column="v", color_scheme="viridis")
    frame = frame_of([("x", "text", ["a", "b"]), ("y", "text", ["c", "c"]), ("v", "int8", [1, 2])])
    widgets = [widget(f"Heat {i}", 0, i * 3, 6, 3, heatmap=config) for i in range(3)]
    document, _ = render(dashboard_of("Heat", widgets), [WidgetContent(w, frame=frame) for w in widgets])
    root = parse(document)
    ids = [node.attrs["id"] for node in root.iter() if "id" in node.attrs]
    assert len(ids) == len(set(ids)) >= 3
    for card in root.find_all("section", "widget"):
        local = {node.attrs["id"] for node in card.iter() if "id" in node.attrs}
        refs = {m for node in card.iter() for v in node.attrs.values() for m in re.findall(r"url\(#([^)]+)\)", v)}
        assert refs and refs <= local


def test_every_listed_heatmap_scheme_is_known_to_vega() -> None:
    for scheme in sorted(HEATMAP_SCHEMES):
        spec = {
            "data": {"values": [{"v": 1}, {"v": 2}]},
            "mark": "rect",
            "encoding": {"color": {"field": "v", "type": "quantitative", "scale": {"scheme": scheme}}},
        }
        assert "<svg" in render_svg(spec, scheme), scheme


def test_vl_convert_fetches_nothing() -> None:
    with pytest.raises(ChartError):
        render_svg({"data": {"url": "http://127.0.0.1:9/data.json"}, "mark": "point"}, "x")


# ---------------------------------------------------------------------------------------------
# Tables


def test_table_rows_sorted_formatted_and_masked(sample: tuple[str, Node]) -> None:
    _, root = sample
    table = cards(root)["Current inpatients"].find("table", "data-table")
    assert [th.text for th in table.find("thead").find_all("th")] == [
        "MRN",
        "Patient",
        "Ward",
        "Stay (days)",
        "Charges",
    ]
    rows = [[td.text for td in tr.find_all("td")] for tr in table.find("tbody").find_all("tr")]
    assert len(rows) == 8
    assert [r[0] for r in rows] == [f"MRN-{10_000 + i}" for i in range(7, -1, -1)]  # stay, descending
    assert rows[0] == ["MRN-10007", "[REDACTED]", "Oncology", "7.25", "€12,164.00"]
    assert {r[1] for r in rows} == {"[REDACTED]"}
    document, _ = sample
    assert "Zoë Martin" not in document


def test_table_sort_is_typed_with_nulls_last() -> None:
    config = widget_pb2.TableConfig(sort_column="n")
    frame = frame_of([("n", "numeric", [Decimal("10"), None, Decimal("9.5"), Decimal("NaN"), Decimal("-1")])])
    card = one(widget("T", 0, 0, 6, 6, table=config), frame)
    assert [td.text for td in card.find_all("td")] == ["-1", "9.5", "10", "NaN", "—"]
    config.sort_descending = True
    card = one(widget("T", 0, 0, 6, 6, table=config), frame)
    assert [td.text for td in card.find_all("td")] == ["NaN", "10", "9.5", "-1", "—"]


def long_table(rows: int = 500, ward: str = "Ward {} — 病棟 {}") -> tuple[widget_pb2.Widget, common_pb2.DataFrame]:
    config = widget_pb2.TableConfig(
        columns=[
            widget_pb2.TableColumn(column="id", label="Encounter"),
            widget_pb2.TableColumn(column="ward", label="Ward"),
            widget_pb2.TableColumn(column="cost", label="Cost", format=widget_pb2.NumberFormat(decimals=2)),
        ]
    )
    frame = frame_of(
        [
            ("id", "int8", list(range(1, rows + 1))),
            ("ward", "text", [ward.format(i % 9, i % 4) for i in range(rows)]),
            ("cost", "float8", [i * 10.125 for i in range(rows)]),
        ]
    )
    return widget("All encounters", 0, 2, 6, 6, table=config), frame


def test_a_500_row_table_flows_in_a_band_of_its_own_with_its_header() -> None:
    table, frame = long_table()
    kpi = widget("Encounters", 6, 2, 6, 2, kpi=widget_pb2.KpiConfig(value_column="n"))
    top = widget("Top", 0, 0, 12, 2, kpi=widget_pb2.KpiConfig(value_column="n"))
    board = dashboard_of("Encounters", [top, table, kpi])
    contents = [
        WidgetContent(top, frame=frame_of([("n", "int8", [1])])),
        WidgetContent(table, frame=frame),
        WidgetContent(kpi, frame=frame_of([("n", "int8", [500])])),
    ]
    document, _ = render(board, contents)
    root = parse(document)
    bands_found = root.find_all("div", "band")
    assert [[c.find("h2").text for c in b.find_all("section")] for b in bands_found] == [
        ["Top"],
        ["Encounters"],
        ["All encounters"],
    ]
    flow = bands_found[2]
    assert "band-flow" in flow.attrs["class"]
    assert [th.text for th in flow.find("thead").find_all("th")] == ["Encounter", "Ward", "Cost"]
    body_rows = flow.find("tbody").find_all("tr")
    assert len(body_rows) == 500
    assert [td.text for td in body_rows[-1].find_all("td")] == ["500", "Ward 4 — 病棟 3", "5052.38"]
    css = root.find("style").text
    assert ".data-table thead { display: table-header-group; }" in css
    assert ".data-table tr { break-inside: avoid;" in css
    assert ".flow .widget-head { break-after: avoid;" in css


def test_a_short_table_stays_in_its_grid_cell() -> None:
    table, frame = long_table(rows=5)
    document, rendered = render(dashboard_of("Short", [table]), [WidgetContent(table, frame=frame)])
    root = parse(document)
    assert "band-flow" not in root.find("div", "band").attrs["class"]
    assert rendered[0].table_height_px is not None and rendered[0].table_height_px < 6 * 80


def test_a_table_in_a_band_taller_than_a_page_leaves_the_band() -> None:
    # The table's rows fit its box, but the table chains two chart rows into one band taller than
    # an A4 landscape page (710 px): the table flows, the charts keep their own bands.
    table, frame = long_table(rows=12)
    table.position.CopyFrom(widget_pb2.GridPosition(x=0, y=0, width=6, height=9))
    config = widget_pb2.BarChartConfig(category_column="c", value_columns=["v"])
    bar_frame = frame_of([("c", "text", ["a"]), ("v", "int8", [1])])
    first, second = widget("B1", 6, 0, 6, 4, bar=config), widget("B2", 6, 5, 6, 4, bar=config)
    board = dashboard_of("Tall", [table, first, second])
    contents = [
        WidgetContent(table, frame=frame),
        WidgetContent(first, frame=bar_frame),
        WidgetContent(second, frame=bar_frame),
    ]
    root = parse(render(board, contents)[0])
    assert [[c.find("h2").text for c in b.find_all("section")] for b in root.find_all("div", "band")] == [
        ["B1"],
        ["All encounters"],
        ["B2"],
    ]


# ---------------------------------------------------------------------------------------------
# Scale, states, validation


def test_widgets_scale_so_the_tallest_band_fits_a_page() -> None:
    config = widget_pb2.LineChartConfig(x_column="x", y_columns=["y"])
    tall = widget("Tall", 0, 0, 12, 20, line=config)
    board = dashboard_of("Scaled", [tall])
    options = normalized(export_pb2.ExportOptions(paper_size=export_pb2.PAPER_SIZE_A4))
    renderer = PageRenderer(PageSpec(board, 1, {}, GENERATED_AT, export_pb2.EXPORT_FORMAT_PDF, options))
    page = geometry(options).content_height_px
    # The only band is the first: it fits the first page below the header, not shrunk further.
    below_header = page - PAGE_SLACK_PX - renderer._header_allowance()
    assert renderer.grid.span_px(20) == pytest.approx(below_header)
    assert page / 2 < renderer.grid.span_px(20) < page - 100


def test_later_bands_use_the_whole_page_and_the_first_fits_under_the_header() -> None:
    config = widget_pb2.LineChartConfig(x_column="x", y_columns=["y"])
    first = widget("First", 0, 0, 12, 2, line=config)
    tall = widget("Tall", 0, 2, 12, 20, line=config)
    options = normalized(export_pb2.ExportOptions(paper_size=export_pb2.PAPER_SIZE_A4))
    board = dashboard_of("Two", [first, tall])
    renderer = PageRenderer(PageSpec(board, 1, {}, GENERATED_AT, export_pb2.EXPORT_FORMAT_PDF, options))
    page = geometry(options).content_height_px - PAGE_SLACK_PX
    assert renderer.grid.span_px(20) == pytest.approx(page)
    assert renderer.grid.span_px(2) < page - renderer._header_allowance()
    assert renderer.grid.row_px / renderer.grid.gap_px == pytest.approx(80 / 16)
    frame = frame_of([("x", "int8", [1, 2, 3]), ("y", "int8", [3, 1, 2])])
    card = parse(renderer.document([renderer.widget(WidgetContent(tall, frame=frame))])).find("section")
    assert int(card.find("svg").attrs["height"]) <= page
    # A PNG has no pages: nothing is scaled.
    png = PageRenderer(PageSpec(board, 1, {}, GENERATED_AT, export_pb2.EXPORT_FORMAT_PNG, options))
    assert png.grid.row_px == 80 and png.grid.page_height_px is None


def test_error_and_empty_states(sample: tuple[str, Node]) -> None:
    _, root = sample
    failed = cards(root)["Readmissions (30 days)"]
    alert = failed.find("div", "widget-error")
    assert alert.attrs["role"] == "alert"
    assert alert.find("p", "widget-error-message").text == "query timed out after 30 s (statement_timeout)"
    assert cards(root)["Transfers pending"].find("div", "widget-empty").text == "No data"


@pytest.mark.parametrize(
    ("config", "frame", "message"),
    [
        (
            {"kpi": widget_pb2.KpiConfig(value_column="missing")},
            frame_of([("v", "int8", [1])]),
            "kpi.value_column: column 'missing' is not in the widget's data",
        ),
        (
            {"heatmap": widget_pb2.HeatmapConfig(x_column="v", y_column="v", value_column="v", color_scheme="nosuch")},
            frame_of([("v", "int8", [1])]),
            "heatmap.color_scheme: 'nosuch' is not a Vega colour scheme",
        ),
        (
            {"line": widget_pb2.LineChartConfig(x_column="v", y_columns=["v", "name"])},
            masked(frame_of([("v", "int8", [1]), ("name", "int8", [2])]), "name", ["[REDACTED]"]),
            "line.y_columns[1]: column 'name' must be numeric, it is masked (PHI)",
        ),
        (
            {"table": widget_pb2.TableConfig(sort_column="nope")},
            frame_of([("v", "int8", [1])]),
            "table.sort_column: column 'nope' is not in the widget's data",
        ),
        (
            {"kpi": widget_pb2.KpiConfig(value_column="v", thresholds=[widget_pb2.Threshold(value=1, color="red")])},
            frame_of([("v", "int8", [1])]),
            "kpi.thresholds[0].color: 'red' is not a #rrggbb colour",
        ),
    ],
)
def test_config_that_does_not_match_the_data_shows_an_error_naming_the_field(
    config: dict[str, object], frame: common_pb2.DataFrame, message: str
) -> None:
    card = one(widget("Broken", 0, 0, 6, 4, **config), frame)
    assert card.find("p", "widget-error-message").text == message


def test_truncated_data_is_said_so() -> None:
    frame = frame_of([("c", "text", ["a", "b"]), ("v", "int8", [1, 2])], truncated=True)
    card = one(
        widget("Cut", 0, 0, 6, 4, bar=widget_pb2.BarChartConfig(category_column="c", value_columns=["v"])), frame
    )
    assert card.find("p", "widget-note").text == "Showing the first 2 rows: the result was cut at the row limit."


def test_bad_inputs_are_refused_naming_the_field() -> None:
    board = dashboard_of("X", [])
    with pytest.raises(ValueError, match="generated_at must be timezone-aware"):
        PageRenderer(PageSpec(board, 1, {}, dt.datetime(2026, 1, 1), export_pb2.EXPORT_FORMAT_PDF))
    with pytest.raises(ValueError, match="format: must be EXPORT_FORMAT_PDF or EXPORT_FORMAT_PNG"):
        PageRenderer(PageSpec(board, 1, {}, GENERATED_AT, export_pb2.EXPORT_FORMAT_UNSPECIFIED))
    with pytest.raises(ValueError, match="exactly one of frame and error"):
        WidgetContent(widget("K", 0, 0, 1, 1, kpi=widget_pb2.KpiConfig(value_column="v")))
    bad = widget("K", 10, 0, 4, 1, kpi=widget_pb2.KpiConfig(value_column="v"))
    renderer = PageRenderer(PageSpec(board, 1, {}, GENERATED_AT, export_pb2.EXPORT_FORMAT_PDF))
    with pytest.raises(ValueError, match="position: width must be 1-2 at x=10, got 4"):
        renderer.widget(WidgetContent(bad, frame=frame_of([("v", "int8", [1])])))


def test_png_page_is_width_px_wide_and_transparent_when_asked() -> None:
    kpi = widget("K", 0, 0, 3, 2, kpi=widget_pb2.KpiConfig(value_column="v"))
    board, contents = dashboard_of("PNG", [kpi]), [WidgetContent(kpi, frame=frame_of([("v", "int8", [1])]))]
    options = export_pb2.ExportOptions(width_px=1600, transparent_background=True)
    document, _ = render(board, contents, export_pb2.EXPORT_FORMAT_PNG, options)
    root = parse(document)
    assert root.find("html").attrs["class"] == "png transparent"
    css = root.find("style").text
    assert ".page{width:1600px}" in css and "@page" not in css
    assert "html.transparent, html.transparent body { background: transparent; }" in css
    opaque, _ = render(board, contents, export_pb2.EXPORT_FORMAT_PNG, export_pb2.ExportOptions(width_px=1600))
    assert parse(opaque).find("html").attrs["class"] == "png"


# ---------------------------------------------------------------------------------------------
# Unicode


def test_accents_cjk_and_rtl_survive_everywhere() -> None:
    strings = ["Crème brûlée à Zürich", "東京都の患者数", "مستشفى الملك", "בית חולים"]
    config = widget_pb2.BarChartConfig(category_column=strings[2], value_columns=[strings[1]])
    frame = frame_of([(strings[2], "text", strings), (strings[1], "int8", [1, 2, 3, 4])])
    chart = widget(strings[3], 0, 0, 6, 4, description=strings[0], bar=config)
    table = widget(strings[1], 6, 0, 6, 4, table=widget_pb2.TableConfig())
    board = dashboard_of(strings[0], [chart, table], description=strings[3])
    filters = {"region": common_pb2.ParameterValue(string_value=strings[2])}
    document, _ = render(board, [WidgetContent(chart, frame=frame), WidgetContent(table, frame=frame)], filters=filters)
    root = parse(document)
    titles = root.find_all("h2", "widget-title")
    assert [t.text for t in titles] == [strings[3], strings[1]]
    assert all(t.attrs["dir"] == "auto" for t in titles)
    chart_texts = {t.text for t in root.find_all("text")}
    assert set(strings) <= chart_texts  # categories
    assert [td.text for td in root.find("table").find_all("td")][::2] == strings
    assert root.find("span", "filter-value").text == strings[2]
    assert root.find("p", "report-description").text == strings[3]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (common_pb2.ParameterValue(string_value="ICU"), "ICU"),
        (common_pb2.ParameterValue(int_value=-42), "-42"),
        (common_pb2.ParameterValue(double_value=0.1), "0.1"),
        (common_pb2.ParameterValue(bool_value=False), "false"),
        (common_pb2.ParameterValue(date_value={"year": 2026, "month": 2, "day": 9}), "2026-02-09"),
        (common_pb2.ParameterValue(timestamp_value={"seconds": 1_767_225_600}), "2026-01-01 00:00:00 UTC"),
        (
            common_pb2.ParameterValue(
                list_value=common_pb2.ParameterValueList(
                    values=[common_pb2.ParameterValue(int_value=1), common_pb2.ParameterValue(int_value=2)]
                )
            ),
            "1, 2",
        ),
        (common_pb2.ParameterValue(), ""),
    ],
)
def test_filter_values_as_people_read_them(value: common_pb2.ParameterValue, expected: str) -> None:
    assert parameter_text(value) == expected


def test_chart_without_value_columns_names_the_field() -> None:
    card = one(widget("L", 0, 0, 6, 4, line=widget_pb2.LineChartConfig(x_column="v")), frame_of([("v", "int8", [1])]))
    assert card.find("p", "widget-error-message").text == "line.y_columns: at least one column is needed"


def test_a_chart_drawn_again_comes_from_the_process_cache_with_its_own_ids() -> None:
    from server.exports.render import charts

    spec = charts.bar_spec(
        widget_pb2.BarChartConfig(category_column="ward", value_columns=["n"]),
        frame_of([("ward", "text", ["North", "South"]), ("n", "int8", [3, 5])]),
        300,
        200,
    )
    first = charts.render_svg(spec, "chart-a")
    hits = charts._drawn.cache_info().hits
    second = charts.render_svg(spec, "chart-b")
    assert charts._drawn.cache_info().hits == hits + 1
    assert first.replace("chart-a", "chart-b") == second
