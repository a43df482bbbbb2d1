"""ngx_http_access_module: ``allow`` / ``deny`` by client address.

Invariants:
- Addresses are ``portico.core.inet`` ``(family, int)`` pairs (nginx's
  parsers, ngx_ptocidr for the rules).  Rules are parsed once, at
  configuration time, into ``(mask, net, deny)`` integer triples kept per
  family, as nginx keeps ``rules``, ``rules6`` and ``rules_un``; ``all``
  goes into all three lists.  A family without any rule (list ``None``)
  declines, it does not deny.
- Rules are not merged: a level with any allow/deny of its own ignores its
  parent's (ngx_http_access_merge_loc_conf).
- An IPv4-mapped IPv6 client is checked against the IPv4 rules when there
  are any (and then never against the IPv6 rules), else against the IPv6
  rules with its full address.
- The first matching rule decides.  A deny answers 403; under ``satisfy
  all`` the handler itself logs "access forbidden by rule" (under ``satisfy
  any`` the post-access phase logs it if nothing else granted access).
- The phase handler is registered only when some configuration has a rule,
  so requests pay nothing otherwise.
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core import log as logmod
from ...core.inet import ALL32, UNIX, V4, V6, addr_key, ptocidr
from ...core.module import (HTTP, LMT, LOCATION, SERVER, TAKE1, Conf, Module, UNSET, dir)
from ..request import DECLINED, OK, Request


# --- configuration ---------------------------------------------------------------------


class AccessRules:
    """One level's rules, split by family like nginx's three arrays."""
    __slots__ = ("v4", "v6", "un")

    def __init__(self) -> None:
        self.v4: list[tuple[int, int, bool]] | None = None
        self.v6: list[tuple[int, int, bool]] | None = None
        self.un: list[tuple[int, int, bool]] | None = None


class AccessLocConf(Conf):
    rules: Any = None  # AccessRules | None; UNSET-merge = nginx's all-or-nothing inheritance


class AccessMainConf(Conf):
    used: bool = False  # some level has a rule: register the phase handler


def _rule(cf: Any, node: Node, conf: AccessLocConf) -> None:
    value = node.args[0]
    deny = node.name == "deny"
    rules = conf.rules
    if rules is UNSET or rules is None:
        rules = conf.rules = AccessRules()
    if value == "all":
        fams: tuple[int, ...] = (V4, V6, UNIX)
        net = mask = 0
    elif value == "unix:":
        fams, net, mask = (UNIX,), 0, 0
    else:
        c = ptocidr(value)
        if c is None:
            raise node.error(f'invalid parameter "{value}"')
        fam, net, mask, low_bits = c
        if low_bits:
            cf.cycle.warn(f"low address bits of {value} are meaningless", node)
        fams = (fam,)
    for fam in fams:
        attr = "v4" if fam == V4 else "v6" if fam == V6 else "un"
        lst = getattr(rules, attr)
        if lst is None:
            lst = []
            setattr(rules, attr, lst)
        lst.append((mask, net, deny))
    cf.main["access"].used = True


# --- the ACCESS phase handler ------------------------------------------------------------


def access_handler(r: Request) -> int:
    rules = r.loc.access.rules
    if rules is None:
        return DECLINED
    fam, a = addr_key(r.conn.client_addr)
    if fam == V4:
        lst = rules.v4
    elif fam == V6:
        if rules.v4 is not None and a >> 32 == 0xFFFF:  # IN6_IS_ADDR_V4MAPPED
            lst = rules.v4
            a &= ALL32
        else:
            lst = rules.v6
    else:
        lst = rules.un
    if lst is None:
        return DECLINED
    for mask, net, deny in lst:
        if a & mask == net:
            if not deny:
                return OK
            if r.loc.core.satisfy == "all":
                r.log_error(logmod.ERROR, "access forbidden by rule")
            return 403
    return DECLINED


class AccessModule(Module):
    name = "access"
    nginx_name = "ngx_http_access_module"
    is_http = True
    main_conf = AccessMainConf
    loc_conf = AccessLocConf
    directives = [
        dir("allow", frozenset({HTTP, SERVER, LOCATION, LMT}), TAKE1, _rule),
        dir("deny", frozenset({HTTP, SERVER, LOCATION, LMT}), TAKE1, _rule),
    ]

    def postconfiguration(self, http: Any) -> None:
        if http.main["access"].used:
            http.add_phase_handler("access", access_handler, lambda lc: lc.access.rules is not None)
