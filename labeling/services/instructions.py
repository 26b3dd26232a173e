"""Project instructions: Markdown written by a manager, rendered to HTML that is safe to show raters.

markdown-it-py renders CommonMark with raw HTML switched off; nh3 (the Rust ``ammonia`` sanitiser) then
keeps only harmless tags and attributes, so neither a ``<script>`` typed into the Markdown nor a
``javascript:`` link reaches a rater's browser. Links open with ``rel="noopener noreferrer"``.
"""
from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

from labeling.models import ExamplePair, Project

_markdown = MarkdownIt("js-default")  # CommonMark, raw HTML off, links validated
_ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "th": {"align"}, "td": {"align"},
                       "ol": {"start"}}


def render_markdown(text: str) -> str:
    """Safe HTML for ``text`` (Markdown); empty for empty text."""
    if not text.strip():
        return ""
    html = _markdown.render(text)
    return nh3.clean(html, tags=_ALLOWED_TAGS, attributes=_ALLOWED_ATTRIBUTES, link_rel="noopener noreferrer",
                     url_schemes={"http", "https", "mailto"})


def example_pairs(project: Project) -> list[ExamplePair]:
    """The project's example pairs with their images, oldest first."""
    return list(ExamplePair.objects.filter(project=project).select_related("image_a", "image_b").order_by("id"))


def has_instructions(project: Project) -> bool:
    return bool(project.instructions.strip()) or ExamplePair.objects.filter(project=project).exists()
