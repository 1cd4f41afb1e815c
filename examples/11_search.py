"""Usage example 10: search and favorites.

Makes three dashboards (one with the word in its title, one with it in a tag, one in its
description) and a widget titled with it; searches by the word (title matches first, then tags,
then descriptions; snippets with the matched words marked), by a misspelt word (found by trigram
similarity, ranked below every word match), and page by page; marks a dashboard as a favorite and
lists dashboards with favorites first. Deletes what it made unless --keep.
"""

from __future__ import annotations

from _common import arguments, connect, expect, main, run_tag, say, step

from dashboard.v1 import search_pb2 as sr
from dashboard.v1 import widget_pb2 as w
from tessera_client import Client


def build(client: Client, tag: str, word: str) -> dict[str, str]:
    titled = client.dashboards.create(title=f"{word.capitalize()} bundle compliance", tags=[tag])
    tagged = client.dashboards.create(title="Emergency department flow", tags=[tag, word])
    described = client.dashboards.create(
        title="Antibiotic stewardship", description=f"Time to antibiotics for {word} patients", tags=[tag]
    )
    widget = client.widgets.create(
        dashboard_id=tagged.id,
        title=f"{word.capitalize()} screening",
        position=w.GridPosition(x=0, y=0, width=4, height=2),
        heatmap=w.HeatmapConfig(x_column="hour", y_column="weekday", value_column="n"),
    )
    return {"titled": titled.id, "tagged": tagged.id, "described": described.id, "widget": widget.id}


def shown(result: sr.SearchResult) -> str:
    """The snippet with its matched words in [brackets]."""
    text, out, at = result.snippet, [], 0
    for span in result.highlights:
        out += [text[at : span.start], "[", text[span.start : span.end], "]"]
        at = span.end
    return "".join([*out, text[at:]])


def run() -> None:
    args = arguments(__doc__ or "")
    tag = run_tag()
    # A word of this run only, so other runs' dashboards do not mix in.
    word = f"sepsis{tag[-6:]}".lower()
    with connect(args) as client:
        step("Three dashboards and a widget that mention the word")
        made = build(client, tag, word)
        say(f"the word is {word!r}")

        step("Search by the word: title matches first, then tags, then descriptions")
        results = list(client.search.find(word))
        for result in results:
            kind = sr.SearchResultKind.Name(result.kind).removeprefix("SEARCH_RESULT_KIND_").lower()
            say(f"{result.score:5.3f} {kind:9} {result.title!r}: {shown(result)}")
        order = [r.id for r in results if r.kind == sr.SEARCH_RESULT_KIND_DASHBOARD]
        expect(order == [made["titled"], made["tagged"], made["described"]], "title, then tag, then description")
        expect(made["widget"] in {r.id for r in results}, "the widget is found too")

        step("A misspelt word still finds titles (trigram similarity)")
        misspelt = word[:3] + word[4:]  # one letter dropped
        typo = list(client.search.find(misspelt, kinds=["dashboard"]))
        say(f"{misspelt!r}: " + ", ".join(f"{r.title!r} ({r.score:.2f})" for r in typo))
        expect(made["titled"] in {r.id for r in typo}, "found despite the typo")

        step("Page by page")
        pages = list(client.search.find(word, page_size=1))
        expect([r.id for r in pages] == [r.id for r in results], "one result per page, the same results")
        say(f"{len(pages)} result(s) over {len(pages)} page(s) of one")

        step("Favorites, listed first")
        client.search.add_favorite(made["described"])
        favorites = [f.dashboard.title for f in client.search.favorites()]
        say(f"favorites: {favorites}")
        listed = [b.id for b in client.dashboards.list(tags=[tag], favorites_first=True)]
        expect(listed[0] == made["described"], "the favorite leads the list")
        ranked = list(client.search.find(word, kinds=["dashboard"], favorites_first=True))
        expect(ranked[0].id == made["described"] and ranked[0].favorite, "and leads the search when asked")
        client.search.remove_favorite(made["described"])

        if not args.keep:
            step("Clean up")
            for key in ("titled", "tagged", "described"):
                client.dashboards.delete(made[key])
            say("deleted the three dashboards (and the widget with its dashboard)")


if __name__ == "__main__":
    main(run)
