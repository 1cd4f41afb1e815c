"""Usage example 7: scheduled report subscriptions.

Subscribes a webhook (a small receiver this script runs on loopback) to a published dashboard
every Monday at 07:00 Europe/Paris; shows a bad schedule refused field by field; sends the report
now and follows the delivery (its export job's progress, then each recipient's outcome); checks
the webhook's HMAC-SHA256 signature and the PDF it carried; lists the delivery history; pauses
and resumes the subscription. A Celery worker on the `exports` queue renders and delivers
(`tessera dev` runs one); e-mail recipients need TESSERA_SMTP_HOST on the worker.
Deletes what it made unless --keep.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from _common import arguments, connect, expect, explain, main, run_tag, say, step

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import report_pb2 as r
from dashboard.v1 import widget_pb2 as w
from tessera_client import ApiError, Client
from tessera_client.webhooks import SIGNATURE_HEADER, verify

received: list[tuple[dict[str, str], bytes]] = []


class Receiver(BaseHTTPRequestHandler):
    """What a webhook consumer runs: take the JSON, answer 2xx quickly."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def build(client: Client, tag: str) -> tuple[str, str]:
    board = client.dashboards.create(title="Infection control weekly", tags=[tag])
    query = client.queries.create(
        name="admissions by unit",
        sql="SELECT unit, count(*) AS admissions FROM demo.admissions GROUP BY unit ORDER BY unit",
        tags=[tag],
    )
    client.widgets.create(
        dashboard_id=board.id,
        title="Admissions by unit",
        position=w.GridPosition(x=0, y=0, width=12, height=4),
        bar=w.BarChartConfig(category_column="unit", value_columns=["admissions"]),
        query=w.QueryBinding(query_id=query.id),
    )
    client.dashboards.publish(board.id)
    return board.id, query.id


def run() -> None:
    args = arguments(__doc__ or "")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/tessera-reports"
    with connect(args) as client:
        step("A published dashboard")
        board_id, query_id = build(client, run_tag())
        say(f"dashboard {board_id}")

        step("A schedule that is not one is refused, naming the field")
        try:
            client.reports.create(board_id, cron="every monday", time_zone="Europe/Paris", webhooks=[hook])
            expect(False, "a bad cron expression is refused")
        except ApiError as error:
            explain(error)
            expect(dict(error.field_violations).keys() == {"subscription.schedule.cron"}, "the cron field is named")

        step("Subscribe the webhook: Mondays at 07:00 in Paris, as PDF")
        sub = client.reports.create(
            board_id,
            title="Weekly admissions",
            cron="0 7 * * 1",
            time_zone="Europe/Paris",
            webhooks=[hook],
            format=e.EXPORT_FORMAT_PDF,
        )
        say(f"subscription {sub.id}, next delivery {sub.next_run_time.ToJsonString()}")
        say("the webhook secret is shown once, in this answer: keep it where the receiver can read it")

        step("Send it now and follow the delivery")

        def progress(job: e.ExportJob) -> None:
            state = c.JobState.Name(job.state).removeprefix("JOB_STATE_")
            say(f"export revision {job.revision:>2} {job.progress.percent:>3}% {state:<9} {job.progress.message}")

        delivery = client.reports.wait_delivery(client.reports.send_now(sub.id).id, on_export=progress, timeout=180)
        for outcome in delivery.recipients:
            say(f"{outcome.recipient}: delivered={outcome.delivered} after {outcome.attempts} attempt(s)")
        expect(delivery.state == r.DELIVERY_STATE_DELIVERED, "the webhook got the report")

        step("The receiver checks the signature and reads the PDF")
        headers, body = received[-1]
        expect(verify(sub.webhook_secret, body, headers[SIGNATURE_HEADER.lower()]), "the signature verifies")
        payload = json.loads(body)
        pdf = base64.b64decode(payload["content_base64"])
        say(f"{payload['file']['filename']}: {len(pdf)} bytes, {payload['file']['page_count']} page(s)")
        expect(pdf.startswith(b"%PDF-"), "a PDF")

        step("Delivery history, pause and resume")
        history = list(client.reports.deliveries(sub.id))
        say(f"{len(history)} delivery(ies); the last: {r.DeliveryState.Name(history[0].state)}")
        paused = client.reports.pause(sub.id)
        expect(not paused.HasField("next_run_time"), "a paused subscription has no next delivery")
        resumed = client.reports.resume(sub.id)
        say(f"resumed; next delivery {resumed.next_run_time.ToJsonString()}")

        if not args.keep:
            step("Clean up")
            client.reports.delete(sub.id)
            client.dashboards.delete(board_id)
            client.queries.delete(query_id)
            say("deleted the subscription, the dashboard and its query")
    server.shutdown()


if __name__ == "__main__":
    main(run)
