"""Packaged jinja2 templates. A workspace's own templates/ folder overrides them file by file."""
