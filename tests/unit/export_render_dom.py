"""A small DOM built with html.parser, for asserting on the export page's structure (and for
finding anything in it that could run code or load a resource)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset({"meta", "link", "br", "img", "input", "hr", "col", "source", "wbr", "area", "base", "embed"})


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)
    parent: Node | None = None

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [
            node
            for node in self.iter()
            if (tag is None or node.tag == tag) and (cls is None or cls in node.attrs.get("class", "").split())
        ]

    def find(self, tag: str | None = None, cls: str | None = None) -> Node:
        found = self.find_all(tag, cls)
        assert found, f"no <{tag or '*'}> with class {cls!r}"
        return found[0]

    @property
    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text for child in self.children)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root
        self.self_closed: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs}, parent=self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {name: value or "" for name, value in attrs}, parent=self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"unbalanced </{tag}>"
        self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse(document: str) -> Node:
    builder = _Builder()
    builder.feed(document)
    builder.close()
    assert builder.current is builder.root, f"unclosed <{builder.current.tag}>"
    return builder.root


# Attributes through which a browser may fetch something or run code.
RESOURCE_ATTRIBUTES = frozenset(
    {"src", "href", "xlink:href", "srcset", "action", "formaction", "data", "poster", "background", "codebase", "ping"}
)
ACTIVE_TAGS = frozenset(
    {"script", "iframe", "object", "embed", "link", "base", "img", "frame", "image", "audio", "video"}
)


def _urls_in_css(css: str) -> list[str]:
    out = []
    rest = css
    while "url(" in rest:
        _, _, rest = rest.partition("url(")
        target, _, rest = rest.partition(")")
        out.append(target.strip().strip("'\""))
    return out


def loads_or_runs(root: Node) -> list[str]:
    """Everything in the document that could run script or fetch from outside it: script-like
    elements, event handlers, resource attributes not pointing at a fragment or data: URL,
    url() in styles likewise, @import, and meta refreshes."""
    problems = []
    for node in root.iter():
        if node.tag in ACTIVE_TAGS:
            problems.append(f"<{node.tag}> element")
        for name, value in node.attrs.items():
            if name.startswith("on"):
                problems.append(f"{name} handler on <{node.tag}>")
            if name in RESOURCE_ATTRIBUTES and not value.startswith(("#", "data:")):
                problems.append(f"{name}={value!r} on <{node.tag}>")
            if name == "style":
                problems.extend(f"url({u}) in a style attribute" for u in _urls_in_css(value) if not u.startswith("#"))
            if node.tag == "meta" and name == "http-equiv" and value.lower() == "refresh":
                problems.append("meta refresh")
        if node.tag == "style":
            css = node.text
            problems.extend(f"url({u}) in <style>" for u in _urls_in_css(css) if not u.startswith(("#", "data:")))
            if "@import" in css:
                problems.append("@import in <style>")
    return problems
