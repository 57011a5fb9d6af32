"""What a workspace watches: the bundled registry of AI providers' documents and tostrack.toml.

bundled.py       the bundled registry (data files in registry/, one <provider>.toml each)
declarations.py  load_sources: the registry combined with [registry] and [[sources]]
validate.py      `sources validate`: fetch twice, check the text (import it from
                 tostrack.sources.validate: it runs the pipeline, which imports this package)

The modules of this package import each other directly, never this __init__.
"""

from tostrack.sources.bundled import registry, registry_providers
from tostrack.sources.declarations import (
    DOCUMENT_TYPES,
    MIN_INTERVAL,
    REGISTRY_KEYS,
    SOURCE_KEYS,
    URL_KEYS,
    find_source,
    load_sources,
    parse_interval,
    source_to_json,
)

__all__ = [
    "DOCUMENT_TYPES",
    "MIN_INTERVAL",
    "REGISTRY_KEYS",
    "SOURCE_KEYS",
    "URL_KEYS",
    "find_source",
    "load_sources",
    "parse_interval",
    "registry",
    "registry_providers",
    "source_to_json",
]
