"""The HTTP bindings read from the services' descriptors (`google.api.http`, additional
bindings included) and the router that matches a request's method and path to one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from dashboard.v1 import (
    alert_pb2,
    dashboard_pb2,
    export_pb2,
    query_pb2,
    report_pb2,
    search_pb2,
    share_pb2,
    widget_pb2,
)

SERVICES: tuple[ServiceDescriptor, ...] = tuple(
    module.DESCRIPTOR.services_by_name[name]
    for module, name in (
        (dashboard_pb2, "DashboardService"),
        (widget_pb2, "WidgetService"),
        (query_pb2, "QueryService"),
        (export_pb2, "ExportService"),
        (share_pb2, "ShareService"),
        (report_pb2, "ReportService"),
        (alert_pb2, "AlertService"),
        (search_pb2, "SearchService"),
    )
)

_VARIABLE = re.compile(r"\{([a-zA-Z0-9_.]+)(?:=([^}]*))?\}")


class TemplateError(ValueError):
    """A path template this router does not understand (caught when the routes are built)."""


@dataclass(frozen=True)
class Binding:
    """One HTTP rule of one rpc."""

    method: MethodDescriptor
    verb: str  # GET, POST, PUT, PATCH, DELETE
    template: str  # as written, e.g. /api/v1/dashboard/dashboards/{dashboard.id}
    body: str  # "", "*" or a top-level field name
    pattern: re.Pattern[str] = field(compare=False)
    variables: tuple[str, ...] = ()  # field paths, in the order the template names them

    @property
    def rpc(self) -> str:
        """The gRPC method path: /dashboard.v1.DashboardService/GetDashboard."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def streaming(self) -> bool:
        return bool(self.method.server_streaming)

    @property
    def request_class(self) -> type[Message]:
        return GetMessageClass(self.method.input_type)

    @property
    def response_class(self) -> type[Message]:
        return GetMessageClass(self.method.output_type)

    def body_field(self) -> FieldDescriptor | None:
        if self.body in ("", "*"):
            return None
        return self.method.input_type.fields_by_name[self.body]

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in zip(self.variables, found.groups(), strict=True)}


def _compile(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """`/a/{x}/b/{y.z=**}:verb` -> a regex over the raw (still percent-encoded) path."""
    path, _, custom = template.partition(":") if "}" not in template.rpartition(":")[2] else (template, "", "")
    out: list[str] = []
    names: list[str] = []
    for segment in path.strip("/").split("/"):
        variable = _VARIABLE.fullmatch(segment)
        if variable is None:
            if "{" in segment or "*" in segment:
                raise TemplateError(f"unsupported segment {segment!r} in {template}")
            out.append(re.escape(segment))
            continue
        names.append(variable.group(1))
        inner = variable.group(2) or "*"
        # One segment never holds a '/' nor (in the last segment) the ':' of a custom verb.
        out.append("(.+)" if inner == "**" else "([^/:]+)" if inner == "*" else _literal_or_fail(inner, template))
    regex = "/" + "/".join(out) + (":" + re.escape(custom) if custom else "")
    return re.compile(regex), tuple(names)


def _literal_or_fail(inner: str, template: str) -> str:
    raise TemplateError(f"unsupported variable pattern {inner!r} in {template}")


def _rules(rule: http_pb2.HttpRule) -> Iterator[http_pb2.HttpRule]:
    yield rule
    yield from rule.additional_bindings


def bindings(services: tuple[ServiceDescriptor, ...] = SERVICES) -> list[Binding]:
    found: list[Binding] = []
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):  # type: ignore[arg-type]
                continue
            for rule in _rules(options.Extensions[annotations_pb2.http]):  # type: ignore[index]
                kind = rule.WhichOneof("pattern")
                if kind is None or kind == "custom":
                    raise TemplateError(f"{method.full_name}: unsupported rule kind {kind}")
                template = getattr(rule, kind)
                pattern, variables = _compile(template)
                found.append(Binding(method, kind.upper(), template, rule.body, pattern, variables))
    return found


# How many matched (verb, path) pairs the router remembers; emptied when full.
ROUTE_CACHE_SIZE = 4096


class Router:
    """Finds the binding for (verb, path). Bindings with a custom verb are tried first, so
    `/exports/{id}:cancel` is never taken for `/exports/{id}`. Matches are remembered (the
    answer for a path never changes), so a hot path skips the scan over every template; paths
    that match nothing are not, so junk cannot crowd the cache."""

    def __init__(self, all_bindings: list[Binding]) -> None:
        self._by_verb: dict[str, list[Binding]] = {}
        for binding in sorted(all_bindings, key=lambda b: (":" not in b.template.rpartition("/")[2], b.template)):
            self._by_verb.setdefault(binding.verb, []).append(binding)
        self._matched: dict[tuple[str, str], tuple[Binding, dict[str, str]]] = {}

    def route(self, verb: str, path: str) -> tuple[Binding, dict[str, str]] | None:
        found = self._matched.get((verb, path))
        if found is not None:
            return found[0], dict(found[1])
        for binding in self._by_verb.get(verb, ()):
            variables = binding.match(path)
            if variables is not None:
                if len(self._matched) >= ROUTE_CACHE_SIZE:
                    self._matched.clear()
                self._matched[verb, path] = (binding, dict(variables))
                return binding, variables
        return None

    def allowed(self, path: str) -> list[str]:
        """The verbs some binding serves at this path (for 405 and CORS preflight)."""
        return sorted(verb for verb, items in self._by_verb.items() if any(b.match(path) is not None for b in items))
