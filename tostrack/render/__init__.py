"""The one view layer, and what is rendered from it: the site, the feeds, the exports.

views.py    a change as readers see it: redlines, headlines, label names, severities (all outputs)
diffs.py    a recorded diff as the change report, the dashboard and the feeds show it
email.py    a recorded diff as the emails show it (tostrack.notify renders and sends them)
pages.py    where pages live, the render context, atomic page writes
site.py     the static site under reports/: dashboard, change reports, timelines, filters
feeds.py    the Atom feeds
export.py   `tostrack export`: clauses or changes as CSV or JSON lines

Import from here; the modules of this package import each other directly, never this __init__.
"""

from tostrack.render.export import export_records
from tostrack.render.pages import change_report_path, feed_path, timeline_path
from tostrack.render.site import render_diff, render_site

__all__ = [
    "change_report_path",
    "export_records",
    "feed_path",
    "render_diff",
    "render_site",
    "timeline_path",
]
