"""The bundled registry, tostrack.toml declarations, and `validate_source` against a real server."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tostrack.errors import ConfigError, InputError
from tostrack.models import Snapshot, Source
from tostrack.sources import (
    DOCUMENT_TYPES,
    find_source,
    load_sources,
    parse_interval,
    registry,
    source_to_json,
)
from tostrack.workspace import Settings, load_settings

REQUIRED_PROVIDERS = (
    "openai",
    "anthropic",
    "google",
    "meta",
    "microsoft",
    "mistral",
    "xai",
    "deepseek",
    "perplexity",
    "cohere",
    "amazon",
    "stability-ai",
    "midjourney",
    "github",
    "hugging-face",
)


def settings(tmp_path: Path, body: str) -> Settings:
    path = tmp_path / "tostrack.toml"
    path.write_text(body, encoding="utf-8")
    return load_settings(path)


def config_error(tmp_path: Path, body: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_sources(settings(tmp_path, body))
    message = str(info.value)
    assert str(tmp_path / "tostrack.toml") in message  # every error names the file
    return message


# -- the registry ---------------------------------------------------------------------------


def test_registry_is_large_unique_and_complete() -> None:
    sources = registry()
    assert len(sources) >= 30
    ids = [s.id for s in sources]
    assert len(ids) == len(set(ids))
    for s in sources:
        assert s.id.startswith(f"{s.provider}/"), s.id
        assert s.title and s.title != s.id, s.id
        assert s.document_type in DOCUMENT_TYPES, s.id
        assert s.language, s.id
        assert s.urls and all(u.startswith(("https://", "http://")) for u in s.urls), s.id
        assert s.interval >= 3600, s.id
    providers = {s.provider for s in sources}
    missing = set(REQUIRED_PROVIDERS) - providers
    assert not missing


def test_registry_covers_the_documents_the_issue_names() -> None:
    ids = {s.id for s in registry()}
    for wanted in (
        "openai/terms-of-use",
        "openai/usage-policies",
        "anthropic/usage-policy",
        "google/generative-ai-terms",
        "google/generative-ai-prohibited-use-policy",
        "meta/llama-license",
        "meta/llama-acceptable-use-policy",
        "meta/meta-ai-terms",
        "microsoft/copilot-terms-of-use",
        "microsoft/services-agreement",
        "amazon/aws-service-terms",
        "github/terms-of-service-and-additional-product-terms",
    ):
        assert wanted in ids
    # Each of the main providers has its terms and its usage policy (or licence).
    by_provider: dict[str, set[str]] = {}
    for s in registry():
        by_provider.setdefault(s.provider, set()).add(s.document_type)
    for provider in ("openai", "anthropic", "google", "meta", "xai", "mistral", "cohere", "amazon"):
        assert "usage-policy" in by_provider[provider], provider


def test_registry_ids_match_the_corpus_folders() -> None:
    """Where ../shared/corpus has a document, the registry uses its folder name as id so a
    corpus history can be imported into the id the crawler then keeps updating."""
    manifest = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "manifest.json"
    if not manifest.exists():
        pytest.skip("the shared corpus is not present")
    corpus = {d["path"] for d in json.loads(manifest.read_text())["documents"]}
    ids = {s.id for s in registry()}
    # The one left out has no current URL in the corpus's declarations.
    assert corpus - ids <= {"mistral/le-chat-eu-consumer-terms"}


def test_registry_files_are_strict() -> None:
    """The packaged files use only known keys and have the provider their ids start with."""
    folder = Path(__file__).resolve().parents[1] / "tostrack" / "sources" / "registry"
    files = sorted(folder.glob("*.toml"))
    assert len(files) >= 15
    total = 0
    for path in files:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert set(data) == {"provider", "name", "documents"}, path.name
        assert path.stem == data["provider"], path.name
        total += len(data["documents"])
    assert total == len(registry())


def test_browser_sources_and_combined_sources_exist() -> None:
    sources = registry()
    assert any(s.browser for s in sources)
    assert any(not s.browser for s in sources)
    combined = [s for s in sources if s.combine]
    assert combined and all(len(s.urls) >= 2 for s in combined)


# -- load_sources: what is watched ----------------------------------------------------------


def test_no_declarations_means_the_whole_registry(tmp_path: Path) -> None:
    assert load_sources(Settings()) == registry()
    assert load_sources(settings(tmp_path, "[fetch]\nretries = 0\n")) == registry()


def test_only_declared_sources_without_a_registry_table(tmp_path: Path) -> None:
    sources = load_sources(
        settings(
            tmp_path,
            """
[[sources]]
id = "acme/terms"
title = "Acme AI Terms"
url = "https://acme.example/terms"
select = ["main"]
""",
        )
    )
    assert len(sources) == 1
    (acme,) = sources
    assert acme.id == "acme/terms"
    assert acme.title == "Acme AI Terms"
    assert acme.provider == "acme"
    assert acme.urls == ("https://acme.example/terms",)
    assert acme.select == ("main",)
    assert acme.remove == ()
    assert acme.interval == 86400
    assert acme.browser is False


def test_registry_include_by_provider_and_id_and_exclude(tmp_path: Path) -> None:
    sources = load_sources(
        settings(
            tmp_path,
            """
[registry]
include = ["openai", "anthropic/usage-policy"]
exclude = ["openai/privacy-policy"]
""",
        )
    )
    ids = [s.id for s in sources]
    openai = {s.id for s in registry() if s.provider == "openai"}
    assert set(ids) == openai - {"openai/privacy-policy"} | {"anthropic/usage-policy"}
    assert ids == [s.id for s in registry() if s.id in ids]  # registry order, no duplicates


def test_registry_all_with_exclude_and_own_sources(tmp_path: Path) -> None:
    sources = load_sources(
        settings(
            tmp_path,
            """
[registry]
include = "all"
exclude = ["x", "reddit"]

[[sources]]
id = "acme/terms"
url = "https://acme.example/terms"
""",
        )
    )
    ids = [s.id for s in sources]
    assert "x/terms-of-service" not in ids and "reddit/user-agreement" not in ids
    assert ids[-1] == "acme/terms"
    assert len(ids) == len(registry()) - 2 + 1
    assert sources[-1].title == "acme/terms"  # the id stands in for a missing title


def test_registry_table_with_only_exclude_keeps_the_rest(tmp_path: Path) -> None:
    sources = load_sources(settings(tmp_path, '[registry]\nexclude = ["google"]\n'))
    assert sources and all(s.provider != "google" for s in sources)
    assert len(sources) == len(registry()) - sum(1 for s in registry() if s.provider == "google")


def test_declaring_a_registry_id_without_url_enables_it_with_overrides(tmp_path: Path) -> None:
    sources = load_sources(
        settings(
            tmp_path,
            """
[[sources]]
id = "anthropic/usage-policy"
interval = "6h"
remove = ".cookie-banner"
headers = { Accept-Language = "en-GB" }
""",
        )
    )
    (source,) = sources
    bundled = find_source(registry(), "anthropic/usage-policy")
    assert source.urls == bundled.urls
    assert source.select == bundled.select
    assert source.title == bundled.title
    assert source.interval == 6 * 3600
    assert source.remove == (".cookie-banner",)
    assert source.headers == (("Accept-Language", "en-GB"),)


def test_declaration_with_url_replaces_the_registry_entry_in_place(tmp_path: Path) -> None:
    sources = load_sources(
        settings(
            tmp_path,
            """
[registry]
include = ["anthropic"]

[[sources]]
id = "anthropic/usage-policy"
url = "https://mirror.example/aup"
""",
        )
    )
    ids = [s.id for s in sources]
    assert ids == [s.id for s in registry() if s.provider == "anthropic"]
    replaced = find_source(sources, "anthropic/usage-policy")
    assert replaced.urls == ("https://mirror.example/aup",)
    assert replaced.select == ()


def test_all_source_keys(tmp_path: Path) -> None:
    (source,) = load_sources(
        settings(
            tmp_path,
            """
[[sources]]
id = "acme/usage-policy"
combine = ["https://acme.example/policy/1", "https://acme.example/policy/2"]
title = "Acme Usage Policy"
document_type = "usage-policy"
language = "de"
select = "article"
remove = ["nav", ".ad"]
interval = 7200
browser = true
headers = { Cookie = "consent=yes", X-Test = "1" }
""",
        )
    )
    assert source.urls == ("https://acme.example/policy/1", "https://acme.example/policy/2")
    assert source.combine
    assert source.document_type == "usage-policy"
    assert source.language == "de"
    assert source.select == ("article",)
    assert source.remove == ("nav", ".ad")
    assert source.interval == 7200
    assert source.browser is True
    assert dict(source.headers) == {"Cookie": "consent=yes", "X-Test": "1"}
    assert "Cookie" not in json.dumps(source_to_json(source))  # headers may hold credentials


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (3600, 3600),
        ("3600", 3600),
        ("30m", 1800),
        ("6h", 21600),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        (" 2H ", 7200),
    ],
)
def test_parse_interval(value: object, seconds: int) -> None:
    assert parse_interval(value) == seconds


@pytest.mark.parametrize("value", ["soon", "6 hours", "", "h", "-5m", 0, 30, "10s", True, 1.5, [1]])
def test_parse_interval_rejects(value: object) -> None:
    with pytest.raises(ConfigError, match="interval"):
        parse_interval(value)


# -- load_sources: each mistake says what and where -----------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[[sources]]\ntitle = "x"\nurl = "https://a.example/"\n', "#1: needs an id"),
        ('[[sources]]\nid = "acme/terms"\n', "(id 'acme/terms'): has no url"),
        (
            '[[sources]]\nid = "acme"\nurl = "https://a.example/"\n',
            "needs a provider and a document",
        ),
        ('[[sources]]\nid = "Acme Co/Terms"\nurl = "https://a.example/"\n', "'acme-co/terms'"),
        ('[[sources]]\nid = 5\nurl = "https://a.example/"\n', "id must be a string"),
        ('[[sources]]\nid = "a/b"\nurl = "ftp://a.example/"\n', "not an http(s) URL"),
        ('[[sources]]\nid = "a/b"\nurl = ["https://a.example/"]\n', "url must be a string"),
        ('[[sources]]\nid = "a/b"\nurls = []\n', "non-empty list"),
        (
            '[[sources]]\nid = "a/b"\nurl = "https://a.example/"\nurls = ["https://b.example/"]\n',
            "only one of url, urls",
        ),
        (
            '[[sources]]\nid = "a/b"\ncombine = ["https://a.example/", "https://a.example/"]\n',
            "same URL twice",
        ),
        (
            '[[sources]]\nid = "a/b"\nurl = "https://a.example/"\ninterval = "sometimes"\n',
            "interval 'sometimes' is not a duration",
        ),
        ('[[sources]]\nid = "a/b"\nurl = "https://a.example/"\ninterval = 5\n', "shorter than 60"),
        (
            '[[sources]]\nid = "a/b"\nurl = "https://a.example/"\nselect = [1]\n',
            "select must be a CSS",
        ),
        (
            '[[sources]]\nid = "a/b"\nurl = "https://a.example/"\nremove = {a = 1}\n',
            "remove must be",
        ),
        (
            '[[sources]]\nid = "a/b"\nurl = "https://a.example/"\nbrowser = "yes"\n',
            "browser must be true or false",
        ),
        (
            '[[sources]]\nid = "a/b"\nurl = "https://a.example/"\nheaders = ["x"]\n',
            "headers must be a table",
        ),
        (
            '[[sources]]\nid = "a/b"\nurl = "https://a.example/"\ntitle = 3\n',
            "title must be a string",
        ),
        (
            '[[sources]]\nid = "a/b"\nurl = "https://a.example/"\nselector = "main"\n',
            "unknown key 'selector'. Did you mean 'select'?",
        ),
        (
            '[[sources]]\nid = "a/b"\nurl = "https://a.example/"\nprovider = "c"\n',
            "provider 'c' does not match",
        ),
        ('[registry]\ninclude = ["antropic"]\n', "Did you mean 'anthropic'?"),
        (
            '[registry]\ninclude = ["openai/terms-of-service"]\n',
            "Did you mean 'openai/terms-of-use'",
        ),
        ('[registry]\nexclude = ["nobody-at-all"]\n', "exclude names 'nobody-at-all'"),
        ("[registry]\ninclude = [1]\n", "include = [1] is not valid; give a list of strings"),
        ('[registry]\nincludes = ["openai"]\n', "unknown key 'includes'. Did you mean 'include'"),
        ("registry = 3\n", "[registry] must be a table"),
        ('sources = "openai"\n', "use [[sources]] tables"),
    ],
)
def test_config_errors_name_file_entry_and_fix(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in config_error(tmp_path, body)


def test_duplicate_ids_are_an_error(tmp_path: Path) -> None:
    message = config_error(
        tmp_path,
        """
[[sources]]
id = "acme/terms"
url = "https://acme.example/terms"

[[sources]]
id = "acme/terms"
url = "https://acme.example/terms-2"
""",
    )
    assert "[[sources]] #2 (id 'acme/terms')" in message
    assert "declared twice" in message


def test_unknown_registry_id_without_url_suggests_the_bundled_one(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[[sources]]\nid = "anthropic/usage-policies"\n')
    assert "has no url" in message
    assert "Did you mean 'anthropic/usage-policy'" in message


# -- find_source and JSON -------------------------------------------------------------------


def test_find_source_and_its_suggestions() -> None:
    sources = registry()
    assert find_source(sources, "openai/business-terms").provider == "openai"
    with pytest.raises(InputError, match="Did you mean 'openai/terms-of-use'"):
        find_source(sources, "openai/terms-of-us")
    with pytest.raises(InputError, match="'meta' is a provider; its documents: meta/"):
        find_source(sources, "meta")
    with pytest.raises(InputError, match="no source 'zzz/qqq'"):
        find_source(sources, "zzz/qqq")


def test_source_to_json_has_stable_keys() -> None:
    data = source_to_json(find_source(registry(), "openai/usage-policies"))
    assert list(data) == [
        "id",
        "title",
        "provider",
        "document_type",
        "language",
        "urls",
        "select",
        "remove",
        "browser",
        "interval",
    ]
    assert data["id"] == "openai/usage-policies"
    assert len(data["urls"]) > 1
    assert json.loads(json.dumps(data)) == data


# -- validate_source against a real HTTP server on 127.0.0.1 --------------------------------

POLICY = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Quillon Usage Policy</title></head><body>
<nav><a href="/">Home</a> <a href="/pricing">Pricing</a> <a href="/blog">Blog</a></nav>
<main>
<h1>Quillon Usage Policy</h1>
<p>Effective date: 3 March 2026</p>
<h2>1. Who this policy covers</h2>
<p>1.1 This policy applies to everyone who sends requests to the Quillon models, whether through
the web console, the developer interface or a partner integration.</p>
<p>1.2 Organisations that resell access remain responsible for making their own customers follow
these rules and for answering our questions about how the service is used.</p>
<h2>2. What you must not do</h2>
<p>2.1 Do not use outputs to build or improve a model that competes with Quillon.</p>
<p>2.2 Do not collect outputs in bulk by automated means outside the documented interface.</p>
<p>2.3 Do not generate material that sexualises minors or that incites violence.</p>
<p>2.4 Do not present generated text as written by a human when a reader would be misled.</p>
<h2>3. Enforcement</h2>
<p>3.1 We may suspend an account that breaks this policy, with notice where the law allows.</p>
<p>3.2 Repeated or serious breaches lead to termination under the Quillon service terms.</p>
</main>
<footer>Quillon Labs, 12 Harbour Row. {token}</footer></body></html>
"""


def quillon(**overrides: Any) -> Source:
    values: dict[str, Any] = {
        "id": "quillon/usage-policy",
        "urls": ("http://127.0.0.1/",),
        "title": "Quillon Usage Policy",
        "select": ("main",),
    }
    values.update(overrides)
    return Source(**values)


@pytest.fixture
def fetch_config() -> Any:
    fetch = pytest.importorskip("tostrack.fetch")
    return fetch.FetchConfig(retries=0, delay=0, confirm_delay=0, browser="never")


def test_validate_a_stable_page(httpserver: HTTPServer, fetch_config: Any) -> None:
    from tostrack.pipeline import analyse, extract_snapshots
    from tostrack.sources.validate import validate_source
    from tostrack.store import text_digest

    # The footer changes per visit, but it is outside `select`, so the document is stable.
    visits = iter(range(1000))
    httpserver.expect_request("/policy").respond_with_handler(
        lambda request: _html(POLICY.replace("{token}", f"visit {next(visits)}"))
    )
    source = quillon(urls=(httpserver.url_for("/policy"),))
    result = validate_source(source, fetch_config)
    assert result.ok, result.problems
    assert result.problems == ()
    assert result.source_id == "quillon/usage-policy"
    assert result.clauses >= 8
    assert 700 <= result.characters < len(POLICY)
    assert len(httpserver.log) == 2  # fetched twice

    body = POLICY.replace("{token}", "x").encode()
    snap = Snapshot(source.id, source.url, "2026-11-27T00:00:00Z", 200, "text/html", body)
    assert result.sha256 == text_digest(analyse(extract_snapshots((snap,), source)))


def test_validate_reports_text_that_changes_between_visits(
    httpserver: HTTPServer, fetch_config: Any
) -> None:
    from tostrack.sources.validate import validate_source

    visits = iter(range(1000))
    httpserver.expect_request("/policy").respond_with_handler(
        lambda request: _html(
            POLICY.replace("</main>", f"<p>Reference QX-{next(visits) * 7919}</p></main>")
        )
    )
    result = validate_source(quillon(urls=(httpserver.url_for("/policy"),)), fetch_config)
    assert not result.ok
    (problem,) = result.problems
    assert "different text" in problem
    assert "QX-0" in problem and "QX-7919" in problem


def test_validate_reports_a_failed_fetch(httpserver: HTTPServer, fetch_config: Any) -> None:
    from tostrack.sources.validate import validate_source

    httpserver.expect_request("/gone").respond_with_data("Not here", status=404)
    result = validate_source(quillon(urls=(httpserver.url_for("/gone"),)), fetch_config)
    assert not result.ok
    assert result.problems[0].startswith("first fetch failed (http-404)")
    assert result.clauses == 0 and result.sha256 == ""
    assert len(httpserver.log) == 1  # no second fetch after a failure


def test_validate_reports_a_selector_that_matches_nothing(
    httpserver: HTTPServer, fetch_config: Any
) -> None:
    from tostrack.sources.validate import validate_source

    httpserver.expect_request("/policy").respond_with_data(
        POLICY.replace("{token}", ""), content_type="text/html; charset=utf-8"
    )
    source = quillon(urls=(httpserver.url_for("/policy"),), select=("#no-such-element",))
    result = validate_source(source, fetch_config)
    assert not result.ok
    assert result.characters == 0
    assert any("#no-such-element" in p for p in result.problems), result.problems


def test_validate_reports_too_little_text(httpserver: HTTPServer, fetch_config: Any) -> None:
    from tostrack.sources.validate import validate_source

    short = (
        "<html><head><title>Quillon Terms</title></head><body><main><h1>Quillon Terms</h1>"
        "<p>1. You may use Quillon for lawful work and nothing else at all, ever.</p>"
        "<p>2. We may change these terms by posting a new version on this very page.</p>"
        "<p>3. Disputes are settled by the courts of the place where Quillon is based.</p>"
        "<p>4. Fees are due within thirty days of each invoice that we send to you.</p>"
        "</main></body></html>"
    )
    httpserver.expect_request("/short").respond_with_data(short, content_type="text/html")
    result = validate_source(
        quillon(urls=(httpserver.url_for("/short"),)), fetch_config, min_characters=2000
    )
    assert not result.ok
    assert len(result.problems) == 1
    assert "too little text" in result.problems[0] or "not the document" in result.problems[0]
    assert 0 < result.characters < 2000


def _html(body: str) -> Any:
    from werkzeug.wrappers import Response

    return Response(body, content_type="text/html; charset=utf-8")


def test_the_config_that_init_writes_loads(tmp_path: Path) -> None:
    from tostrack.config_template import CONFIG_TEMPLATE

    sources = load_sources(settings(tmp_path, CONFIG_TEMPLATE))
    providers = {s.provider for s in sources}
    assert {"openai", "anthropic", "google", "meta", "microsoft"} <= providers
    assert all(s.id in {r.id for r in registry()} for s in sources)


def test_a_declaration_wins_over_registry_exclude(tmp_path: Path) -> None:
    sources = load_sources(
        settings(
            tmp_path,
            """
[registry]
include = ["openai"]
exclude = ["openai/privacy-policy"]

[[sources]]
id = "openai/privacy-policy"
interval = "12h"

[[sources]]
id = "cohere/usage-policy"
""",
        )
    )
    ids = [s.id for s in sources]
    assert ids[-2:] == ["openai/privacy-policy", "cohere/usage-policy"]
    assert find_source(sources, "openai/privacy-policy").interval == 12 * 3600
    assert find_source(sources, "cohere/usage-policy") == find_source(
        registry(), "cohere/usage-policy"
    )
