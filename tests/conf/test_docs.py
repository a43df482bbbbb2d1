"""docs/modules.md is generated from the registry and nginx's catalog, and stays so.

Invariants:
- Regenerating ``docs/modules.md`` gives exactly the committed text (run
  ``python -m portico.docs_gen`` after adding or changing a directive).
- Every directive in ``portico.modules.registry()`` is an nginx directive of
  the catalog (same family, same context kind), so the page covers it.
- The catalog is well formed, and every directive it lists for a module that
  Debian's nginx 1.22.1 has compiled in is known to that binary (a guard
  against typos), except the few documented only for later versions.
"""
from __future__ import annotations

import concurrent.futures
from collections import defaultdict

import pytest

from portico import docs_gen
from portico.modules import registry
from portico.nginx_catalog import BUILDS, FAMILIES, MODULES, family_of

from .difftool import have_nginx, run


def test_docs_modules_md_up_to_date() -> None:
    with open(docs_gen.DEFAULT_OUTPUT, encoding="utf-8") as f:
        current = f.read()
    assert current == docs_gen.render(), "docs/modules.md is stale: run python -m portico.docs_gen"


def test_every_registry_directive_is_in_the_catalog() -> None:
    missing = [f"{d.name} ({d.module.nginx_name if d.module else '?'})" for d in docs_gen.unmatched(registry())]
    assert not missing


def test_registry_modules_have_nginx_names() -> None:
    for m in registry().modules:
        assert m.nginx_name.startswith("ngx_"), m


def test_catalog_well_formed() -> None:
    names = [m.name for m in MODULES]
    assert len(names) == len(set(names))
    owner: dict[tuple[str, str, bool], str] = {}
    for m in MODULES:
        assert m.family in FAMILIES and m.build in BUILDS
        assert family_of(m.name) == m.family, m.name
        assert len(m.directives) == len(set(m.directives)), m.name
        assert list(m.directives) == sorted(m.directives), m.name
        for subset in (m.commercial, m.upstream, set(m.notes)):
            assert set(subset) <= set(m.directives), m.name
        for d in m.directives:
            key = (m.family, d, d in m.upstream)
            assert key not in owner, f"{d} in both {owner.get(key)} and {m.name}"
            owner[key] = m.name


def test_states_are_known() -> None:
    text = docs_gen.render()
    assert "| `include` | done |" in text
    counts: defaultdict[str, int] = defaultdict(int)
    reg = registry()
    for m in MODULES:
        for d in m.directives:
            counts[docs_gen.state_of(m, d, reg)] += 1
    assert set(counts) <= {*docs_gen.STATES, docs_gen.COMMERCIAL, docs_gen.COMMERCIAL_DONE}
    assert counts[docs_gen.DONE] > 0 and counts[docs_gen.MISSING] > 0


#: modules of the catalog that Debian's nginx 1.22.1 binary does not contain
#: (dynamic modules not loaded, or not built at all)
NOT_IN_DEBIAN_BINARY = {
    "ngx_google_perftools_module", "ngx_http_geoip_module", "ngx_http_image_filter_module",
    "ngx_http_perl_module", "ngx_http_xslt_module", "ngx_http_v3_module",
    # third-party modules Portico implements (ngx_brotli, zstd-nginx-module)
    "ngx_http_brotli_filter_module", "ngx_http_brotli_static_module", "ngx_http_zstd_filter_module",
    "ngx_http_zstd_static_module",
}
#: documented directives that appeared after nginx 1.22
NEWER_THAN_1_22 = {"early_hints", "keepalive_min_timeout", "add_header_inherit", "add_trailer_inherit", "http2"}


def _known_to_nginx(name: str) -> bool:
    out = run("nginx", f"{name};\nevents {{}}\n")
    return not (out.emerg and "unknown directive" in out.emerg)


@pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")
def test_catalog_names_known_to_nginx_1_22() -> None:
    names = sorted({d for m in MODULES if m.family in ("core", "http") and m.name not in NOT_IN_DEBIAN_BINARY
                    for d in m.directives if d not in m.commercial and d not in NEWER_THAN_1_22})
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        unknown = [n for n, ok in zip(names, ex.map(_known_to_nginx, names)) if not ok]
    assert not unknown
