"""The jinja2 environment for reports and emails.

Templates ship in the package (tostrack.templates, from the top-level templates/ folder). A
workspace's own templates/ folder overrides them file by file, like Datasette's --template-dir.
"""

from __future__ import annotations

from pathlib import Path

import jinja2


def packaged_templates() -> Path:
    """The packaged templates folder.

    Installed, it is tostrack/templates/ (setup.cfg maps the top-level templates/ there). Run from
    a source checkout (python -m tostrack in the project folder shadows the installed package),
    it is the top-level templates/ beside tostrack/.
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / "base.html").is_file():
            return candidate
    try:  # an editable install maps the package name without a folder under tostrack/
        import importlib.util

        spec = importlib.util.find_spec("tostrack.templates")
        if spec and spec.submodule_search_locations:
            return Path(next(iter(spec.submodule_search_locations)))
    except ImportError:
        pass
    raise FileNotFoundError("tostrack's templates are missing: reinstall tostrack")


def environment(workspace_templates: Path | None = None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if workspace_templates is not None and workspace_templates.is_dir():
        loaders.append(jinja2.FileSystemLoader(str(workspace_templates)))
    loaders.append(jinja2.FileSystemLoader(str(packaged_templates())))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        # Escape everything that could carry page text: a provider page containing <script>
        # must render as text in reports and emails.
        autoescape=jinja2.select_autoescape(["html", "xml", "htm"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
