"""The commented tostrack.toml that `tostrack init` writes."""

from __future__ import annotations

from pathlib import Path

from tostrack.errors import ConfigError
from tostrack.workspace import Workspace

CONFIG_TEMPLATE = """\
# tostrack.toml: what this workspace watches and whom it tells.
# Reference: README.md, "Configuration". Every table is optional; `tostrack config check`
# checks this file without running anything (a misspelt key is an error, with a suggestion).

# Bundled documents of AI providers to watch (`tostrack sources list --registry` shows them all).
# Name whole providers ("openai") or single documents ("anthropic/usage-policy"), or "all".
[registry]
include = ["openai", "anthropic", "google", "meta", "microsoft", "mistral", "xai", "deepseek"]
# exclude = ["openai/privacy-policy"]

# Your own documents. `url`, or `urls` (= `combine`) for a document split over several pages,
# joined in order; optional CSS `select` / `remove`, `interval` ("6h", "1d", or seconds, at
# least 60), `browser = true` for pages that need JavaScript (pip install 'tostrack[browser]'
# and apt-get install chromium). A bundled id without a url enables that document, with overrides.
# [[sources]]
# id = "acme-ai/terms"                  # provider/document: lower case, digits, . - _
# title = "Acme AI Terms of Service"
# url = "https://acme.example/legal/terms"
# urls = ["https://acme.example/legal/terms-1", "https://acme.example/legal/terms-2"]
# combine = ["https://acme.example/a", "https://acme.example/b"]   # the same as urls
# provider = "acme-ai"                  # default: the part of id before "/"
# document_type = "terms-of-service"    # or usage-policy, business-terms, privacy-policy, licence
# language = "en"
# select = ["main"]
# remove = [".cookie-banner"]
# interval = "1d"
# headers = { Accept-Language = "en-GB" }
# browser = false
# notes = "why we watch it"

[fetch]
# retries = 2             # on timeouts, connection errors, 429 and 5xx, with backoff
# backoff = "1s"          # first wait between retries; doubles each time
# connect_timeout = "10s"
# read_timeout = "30s"    # longest wait for the next byte
# total_timeout = "5m"    # wall-clock deadline for one page, retries included, whatever the server does
# max_bytes = "20MB"      # a larger response is refused, never stored
# max_redirects = 5
# delay = "1s"            # polite pause between two requests to the same host
# user_agent = "tostrack (+mailto:legal-ops@example.com)"
# confirm_delay = "60s"   # fetch a changed document again before alerting; 0 turns it off
# max_retry_after = "2m"  # a longer Retry-After ends the fetch; a later run tries again
# max_hosts = 8           # hosts fetched at once; one request at a time to each host, `delay` apart
# browser = "auto"        # "auto": render with Chromium when a page looks blocked; "never"; "always"
# chromium = "/usr/bin/chromium"

# Make a label more or less urgent for your team: high, medium, low or none.
[severity]
# governing-law = "high"

# Mail server. Without [smtp], notifications are written as .eml files in outbox/ ("written",
# not "sent").
# [smtp]
# host = "smtp.example.com"
# port = 587                # default: 25, 587 or 465 by tls
# tls = "starttls"          # "none", "starttls" or "ssl"
# username = "tostrack"
# password_env = "TOSTRACK_SMTP_PASSWORD"   # the password is read from this environment variable
# from = "tostrack <tostrack@example.com>"
# timeout = "30s"
# ca_file = "/etc/ssl/private-ca.pem"   # only for a server with a private certificate

# Who is told. Filters are optional; mode is "immediate", "daily" or "weekly".
# [[recipients]]
# email = "legal@example.com"
# url = "json://hooks.example/tostrack"   # chat or webhook, an Apprise URL (pip install 'tostrack[chat]')
# urls = ["mmosts://chat.example/abc123"] # several; one message each
# url_env = "TOSTRACK_SLACK_URL"          # an environment variable holding a secret URL (never the file)
# max_length = 1500                       # characters a chat message may take (default: the target's, at most 1800)
# providers = ["openai", "anthropic"]
# sources = ["google/gemini-api-additional-terms"]
# labels = ["competing-models", "output-training", "data-extraction", "customer-data-training"]
# min_severity = "medium"
# mode = "immediate"
# effective_date_changes = false   # true: also tell when only the announced effective date moves

# A shared PostgreSQL instead of this folder's tostrack.db (pip install 'tostrack[postgres]').
# The password never goes here: password_env, or a libpq service file / ~/.pgpass.
# [store]
# url = "postgresql://tostrack@db.example/tostrack"
# password_env = "TOSTRACK_DB_PASSWORD"   # the password is read from this environment variable
# lease = "10m"             # a killed worker holds its hosts and messages this long before others take them
# evidence = "/srv/tostrack/evidence"   # captures and raw snapshots, in a folder every worker mounts

[notify]
# operators = ["ops@example.com"]   # told when a source breaks (after broken_after failures) and recovers
# broken_after = 3
# digest_hour = 8                   # UTC hour at which daily and weekly digests fall due
# digest_weekday = "monday"

[report]
# title = "Terms dashboard"
# base_url = "https://intranet.example/tostrack/"   # where reports/ is published: absolute links
# recent_changes = 50
"""  # noqa: E501 - the template is laid out as a user reads it


def write_config(workspace: Workspace, *, force: bool = False) -> Path:
    path = workspace.config_path
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; use --force to overwrite it")
    from tostrack.store import write_atomic

    write_atomic(path, CONFIG_TEMPLATE.encode("utf-8"))
    return path
