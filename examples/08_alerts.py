"""Usage example 8: threshold alerts.

Puts a KPI of the demo admissions on a dashboard; previews a rule on it (the value the widget's
data reduces to now, and whether the condition holds); shows an invalid rule refused field by
field; creates the rule ("admissions > 1 for 2 minutes", critical, to a webhook), silences it for
an hour and lifts the silence; follows its watch stream's first message; lists its history.
Workers evaluate rules every interval (`tessera beat` claims them; `tessera dev` runs one): the
state goes OK -> PENDING -> FIRING -> RESOLVED, with a notification on FIRING and RESOLVED.
Deletes what it made unless --keep.
"""

from __future__ import annotations

import datetime as dt

from _common import arguments, connect, expect, explain, main, run_tag, say, step

from dashboard.v1 import alert_pb2 as a
from dashboard.v1 import widget_pb2 as w
from tessera_client import ApiError, Client
from tessera_client.alerts import rule


def build(client: Client, tag: str) -> tuple[str, str, str]:
    board = client.dashboards.create(title="ED flow", tags=[tag])
    query = client.queries.create(
        name="admissions", sql="SELECT count(*) AS admissions FROM demo.admissions", tags=[tag]
    )
    widget = client.widgets.create(
        dashboard_id=board.id,
        title="Admissions",
        position=w.GridPosition(x=0, y=0, width=4, height=2),
        kpi=w.KpiConfig(value_column="admissions"),
        query=w.QueryBinding(query_id=query.id),
    )
    client.dashboards.publish(board.id)
    return board.id, query.id, widget.id


def run() -> None:
    args = arguments(__doc__ or "")
    with connect(args) as client:
        step("A KPI to watch")
        board_id, query_id, widget_id = build(client, run_tag())
        say(f"widget {widget_id}")

        step("Preview: what an evaluation would read now")
        condition = rule(
            widget_id,
            column="admissions",
            reducer="last",
            comparison=">",
            threshold=1,
            for_seconds=120,
            webhooks=["https://hooks.example.org/tessera-alerts"],
            severity="critical",
            title="Admissions over 1",
        )
        preview = client.alerts.preview(condition)
        say(f"last(admissions) = {preview.value:g} over {preview.row_count} row(s); condition holds: {preview.holds}")
        expect(preview.HasField("value") and preview.holds, "the demo has more than one admission")

        step("An invalid rule is refused, naming each field")
        bad = rule(widget_id, column="", threshold=1, interval_seconds=10, emails=["beds@example.org"])
        try:
            client.alerts.create(bad)
            expect(False, "refused")
        except ApiError as error:
            explain(error)
            expect({"rule.column", "rule.interval"} <= dict(error.field_violations).keys(), "both fields named")

        step("Create the rule")
        made = client.alerts.create(condition)
        say(f"rule {made.id}: every {made.interval.seconds}s, fires after {made.for_duration.seconds}s")
        say("its webhook secret is shown once, in this answer; tessera_client.webhooks.verify checks signatures")
        expect(made.state == a.ALERT_STATE_UNSPECIFIED, "not evaluated yet")

        step("Silence it for an hour, then lift the silence")
        silenced = client.alerts.silence(made.id, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        say(f"silenced until {silenced.silenced_until.ToJsonString()}")
        lifted = client.alerts.silence(made.id, None)
        expect(not lifted.HasField("silenced_until"), "the silence is lifted")

        step("Follow it: the watch sends the rule first, then each state change")
        first = next(iter(client.alerts.follow(made.id)))
        expect(isinstance(first, a.AlertRule) and first.id == made.id, "the rule comes first")
        say(f"state {a.AlertState.Name(first.state)}, revision {first.revision}")
        history = list(client.alerts.events(made.id))
        say(f"{len(history)} state change(s) so far (beat evaluates it every minute)")

        if not args.keep:
            step("Clean up")
            client.alerts.delete(made.id)
            client.dashboards.delete(board_id)
            client.queries.delete(query_id)
            say("deleted the rule, the dashboard and its query")


if __name__ == "__main__":
    main(run)
