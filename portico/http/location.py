"""Locations and nginx's location matching.

Matching, exactly as ngx_http_core_find_location:
1. ``=`` locations match only the whole URI; a hit stops the search.
2. The longest matching prefix location is remembered; if it is ``^~``,
   regexes are not tried.  Its nested locations are searched recursively
   first (a regex hit inside wins).
3. Regex locations of the current level (``~`` case-sensitive, ``~*``
   case-insensitive) are tried in configuration order; the first hit wins and
   its nested locations are searched too.
4. Otherwise the longest prefix wins.

Invariants: the structures are built once per Cycle (``Location.finalize``);
``find`` does no allocation except the regex match object it returns, and
keeps its answers for URIs of up to 256 characters (at most 1024 of them;
a match object is only read, so sharing one is safe).
"""
from __future__ import annotations

from typing import Any

from ..core import pcre


class LocConfs:
    """Attribute bag: one merged loc conf per http module, by module name.

    ``header_chain``/``body_chain`` are this location's filter chains, built
    on first use by ``Engine.chains_for``.
    """

    header_chain: Any = None
    body_chain: Any = None
    body_pre_chain: Any = None  # a subrequest's: the filters above "postpone" (phases.BODY_ORDER)
    body_post_chain: Any = None  # the filters below "postpone"
    fast_plan: Any = None  # a StaticPlan or ProxyPlan where the location allows it (set by Engine)

    def __init__(self, confs: dict[str, Any]) -> None:
        self.__dict__.update(confs)


class Location:
    def __init__(self, name: str, modifier: str, confs: dict[str, Any], parent: "Location | None",
                 file: str = "", line: int = 0) -> None:
        self.name = name
        self.modifier = modifier  # "", "=", "^~", "~", "~*", "@", "if"
        self.confs_raw = confs
        self.parent = parent
        self.file = file
        self.line = line
        self.children: list[Location] = []
        # implicit locations of ``if`` blocks (modifier "if"): merged from this
        # location, never searched by find()
        self.if_children: list[Location] = []
        self.regex: Any = None
        self.named_groups: list[str] = []
        if modifier in ("~", "~*"):
            self.regex = pcre.compile(name, caseless=modifier == "~*")
            self.named_groups = list(self.regex.groupindex)
        self.exact = modifier == "="
        self.noregex = modifier == "^~"
        self.named = modifier == "@"
        self.conf: LocConfs = LocConfs({})
        # built by finalize()
        self._exact: dict[str, Location] = {}
        self._prefix: list[Location] = []  # longest first
        self._regex: list[Location] = []
        # find()'s answers for short URIs: a pure function of the URI
        self._found: dict[str, tuple[Location, Any]] = {}

    def __repr__(self) -> str:
        return f"<location {self.modifier} {self.name}>"

    def finalize(self) -> None:
        self.conf = LocConfs(self.confs_raw)
        self._exact = {}
        prefixes: list[Location] = []
        for c in self.children:
            if c.exact:
                self._exact[c.name] = c
            elif c.regex is not None:
                self._regex.append(c)
            elif not c.named:
                prefixes.append(c)
            c.finalize()
        for c in self.if_children:
            c.conf = LocConfs(c.confs_raw)
        self._prefix = sorted(prefixes, key=lambda l: len(l.name), reverse=True)

    def find(self, uri: str) -> tuple["Location", Any]:
        """Return (location, regex match or None) for ``uri`` below self."""
        hit = self._found.get(uri)
        if hit is not None:
            return hit
        loc, m, _ = self._find(uri)
        hit = (loc if loc is not None else self), m
        if len(uri) <= 256:
            if len(self._found) >= 1024:
                self._found.clear()
            self._found[uri] = hit
        return hit

    def _find(self, uri: str) -> tuple["Location | None", Any, bool]:
        # Mirrors ngx_http_core_find_location: the third value is True when
        # the search is final (exact or regex hit), False for a prefix hit.
        if self._exact:
            e = self._exact.get(uri)
            if e is not None:
                return e, None, True
        current: Location | None = None
        noregex = False
        for p in self._prefix:
            if uri.startswith(p.name):
                current, noregex = p, p.noregex
                if p._prefix or p._regex or p._exact:
                    loc, m, final = p._find(uri)
                    if final:
                        return loc, m, True
                    if loc is not None:
                        current = loc
                break
        if not noregex:
            for rl in self._regex:
                m = rl.regex.search(uri)
                if m is not None:
                    if rl._prefix or rl._regex or rl._exact:
                        loc, m2, final = rl._find(uri)
                        if final:
                            return loc, m2, True
                        if loc is not None:
                            return loc, m, True
                    return rl, m, True
        return current, None, False
