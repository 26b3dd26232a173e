"""Formatting of the dashboard's stored numbers: estimates with intervals, shares, missing values."""
from django import template
from django.utils.html import format_html

register = template.Library()

MISSING = "–"


@register.filter
def num(value, digits=3):
    """A number with ``digits`` decimals, or a dash where there is none."""
    if value is None or value == "":
        return MISSING
    return f"{float(value):.{int(digits)}f}"


@register.filter
def pct(value, digits=1):
    if value is None:
        return MISSING
    return f"{100 * float(value):.{int(digits)}f}%"


@register.filter
def estimate(value, digits=3):
    """{"value", "low", "high"} as the value and its 95% interval."""
    if not value or value.get("value") is None:
        return MISSING
    if value.get("low") is None or value.get("high") is None:
        return format_html('<span class="value">{}</span>', num(value["value"], digits))
    return format_html(
        '<span class="value">{}</span> <span class="ci" title="95% bootstrap confidence interval">[{}–{}]</span>',
        num(value["value"], digits), num(value["low"], digits), num(value["high"], digits),
    )


@register.filter
def lookup(mapping, key):
    return (mapping or {}).get(key, key)
