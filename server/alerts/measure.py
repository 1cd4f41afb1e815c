"""One reading of a rule's condition: the widget's data read as the given principal with PHI
masked (what a notification may carry goes to other people), computed fresh (single-flight still
shares one execution with concurrent readers, and the result warms the cache), reduced and
compared. Shared by the workers' evaluation and PreviewAlertRule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dashboard.v1 import common_pb2, widget_pb2
from server.access.subscriptions import acting_owner
from server.alerts.evaluate import Reduction, holds, reduce_frame
from server.auth.principal import Principal
from server.errors import TesseraError, Unavailable
from server.widgetdata.service import WidgetDataDomain

__all__ = ["Condition", "Measurement", "measure"]


@dataclass(frozen=True)
class Condition:
    widget_id: str
    filter_values: Mapping[str, common_pb2.ParameterValue]
    column: str
    reducer: int
    comparison: int
    threshold: float


@dataclass(frozen=True)
class Measurement:
    value: float | None
    holds: bool | None  # None: the data could not be read or reduced
    error: str = ""
    row_count: int = 0


async def measure(widget_data: WidgetDataDomain, principal: Principal, condition: Condition) -> Measurement:
    """Raises Unavailable (a dependency is down: retry later); every other failure, lost access
    included, is a Measurement with its error."""
    masked = acting_owner(principal, include_phi=False)
    request = widget_pb2.GetWidgetDataRequest(
        widget_id=condition.widget_id, filter_values=dict(condition.filter_values), force_refresh=True
    )
    try:
        data = await widget_data.get(masked, request)
        value = reduce_frame(data.frame, condition.column, condition.reducer)
    except Unavailable:
        raise
    except Reduction as exc:
        return Measurement(None, None, str(exc)[:1000], data.frame.row_count)
    except TesseraError as exc:
        return Measurement(None, None, exc.message[:1000])
    return Measurement(value, holds(value, condition.comparison, condition.threshold), "", data.frame.row_count)
