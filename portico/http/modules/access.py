"""ngx_http_access_module: ``allow`` / ``deny`` by client address.

Also home of nginx's address parsers (ngx_inet.c: ngx_inet_addr,
ngx_inet6_addr, ngx_ptocidr, ngx_parse_addr_port, ngx_inet6_ntop), ported
quirk for quirk, which the realip module shares.

Invariants:
- Addresses are ``(family, int)`` pairs: family 4 (32-bit int), 6 (128-bit
  int) or 0 (a unix-domain socket, int 0).  Rules are parsed once, at
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

import socket
from typing import Any

from ...conf.parser import Node
from ...core import log as logmod
from ...core.module import (HTTP, LMT, LOCATION, SERVER, TAKE1, Conf, Module, UNSET, dir)
from ..request import DECLINED, OK, Request

ALL32 = 0xFFFFFFFF
ALL128 = (1 << 128) - 1

# --- nginx's address parsers (src/core/ngx_inet.c) ---------------------------------


def inet_addr(s: str) -> int | None:
    """ngx_inet_addr: dotted quad -> int; None for INADDR_NONE.

    nginx's own parser: empty octets count as 0 ("1..2.3" is 1.0.2.3),
    leading zeros are decimal, and 255.255.255.255 equals INADDR_NONE so it
    is refused like any invalid text."""
    addr = octet = n = 0
    for c in s:
        if "0" <= c <= "9":
            octet = octet * 10 + ord(c) - 48
            if octet > 255:
                return None
            continue
        if c == ".":
            addr = (addr << 8) + octet
            octet = 0
            n += 1
            continue
        return None
    if n != 3:
        return None
    addr = ((addr << 8) + octet) & ALL32
    return None if addr == ALL32 else addr


def inet6_addr(s: str) -> int | None:
    """ngx_inet6_addr: IPv6 text (with an optional trailing dotted quad) ->
    128-bit int, None when nginx refuses it (no zone ids, no brackets)."""
    length = len(s)
    if length == 0:
        return None
    out = bytearray(16)
    a = 0  # write position, as nginx's ``addr`` pointer
    zero = -1  # position of "::", as nginx's ``zero`` pointer
    digit = -1  # start of the group after the last ':'
    nibbles = word = 0
    n = 8
    i = 1 if s[0] == ":" else 0
    while i < length:
        c = s[i]
        i += 1
        if c == ":":
            if nibbles:
                digit = i
                out[a] = word >> 8
                out[a + 1] = word & 0xFF
                a += 2
                n -= 1
                if n:
                    nibbles = word = 0
                    continue
            elif zero < 0:
                digit = i
                zero = a
                continue
            return None
        if c == "." and nibbles:
            if n < 2 or digit < 0:
                return None
            v4 = inet_addr(s[digit:])
            if v4 is None:
                return None
            word = v4
            out[a] = (word >> 24) & 0xFF
            out[a + 1] = (word >> 16) & 0xFF
            a += 2
            n -= 1
            break
        nibbles += 1
        if nibbles > 4:
            return None
        if "0" <= c <= "9":
            word = word * 16 + ord(c) - 48
            continue
        lc = ord(c) | 0x20
        if 97 <= lc <= 102:  # a-f
            word = word * 16 + lc - 87
            continue
        return None
    if nibbles == 0 and zero < 0:
        return None
    out[a] = (word >> 8) & 0xFF
    out[a + 1] = word & 0xFF
    a += 2
    n -= 1
    if n:
        if zero < 0:
            return None
        gap = n * 2
        out[zero + gap:a + gap] = out[zero:a]
        out[zero:zero + gap] = bytes(gap)
        del out[16:]
    elif zero >= 0:
        return None
    return int.from_bytes(out, "big")


def _atoi(s: str) -> int | None:
    """ngx_atoi: plain decimal digits only, at least one."""
    if not s or not s.isascii() or not s.isdigit():
        return None
    return int(s)


def ptocidr(text: str) -> tuple[int, int, int, bool] | None:
    """ngx_ptocidr: "addr[/bits]" -> (family, net, mask, low_bits_were_set).

    None is NGX_ERROR; ``low_bits_were_set`` is NGX_DONE (the caller warns
    "low address bits of ... are meaningless" and uses the masked net)."""
    slash = text.find("/")
    addr_text = text if slash < 0 else text[:slash]
    v4 = inet_addr(addr_text)
    if v4 is not None:
        fam, addr, full = 4, v4, ALL32
    else:
        v6 = inet6_addr(addr_text)
        if v6 is None:
            return None
        fam, addr, full = 6, v6, ALL128
    if slash < 0:
        return fam, addr, full, False
    shift = _atoi(text[slash + 1:])
    if shift is None:
        return None
    bits = 32 if fam == 4 else 128
    if shift > bits:
        return None
    mask = (full << (bits - shift)) & full
    return fam, addr & mask, mask, addr & mask != addr


def parse_addr(s: str) -> tuple[int, int] | None:
    """ngx_parse_addr: an IPv4 or IPv6 address without port."""
    v4 = inet_addr(s)
    if v4 is not None:
        return 4, v4
    v6 = inet6_addr(s)
    if v6 is not None:
        return 6, v6
    return None


def parse_addr_port(s: str) -> tuple[int, int, int] | None:
    """ngx_parse_addr_port: "addr", "addr:port" or "[v6]:port" ->
    (family, int, port); the port is 0 when absent."""
    a = parse_addr(s)
    if a is not None:
        return a[0], a[1], 0
    if s[:1] == "[":
        j = s.find("]")
        if j < 0 or j == len(s) - 1 or s[j + 1] != ":":
            return None
        host, port_text = s[1:j], s[j + 2:]
    else:
        j = s.find(":")
        if j < 0:
            return None
        host, port_text = s[:j], s[j + 1:]
    port = _atoi(port_text)
    if port is None or port < 1 or port > 65535:
        return None
    a = parse_addr(host)
    if a is None:
        return None
    return a[0], a[1], port


def inet6_ntop(v: int) -> str:
    """ngx_inet6_ntop: nginx's text for an IPv6 address (the longest run of
    two or more zero groups becomes "::"; an IPv4-mapped or -compatible
    address ends in a dotted quad)."""
    p = v.to_bytes(16, "big")
    zero = last = -1
    longest, run = 1, 0
    for i in range(0, 16, 2):
        if p[i] or p[i + 1]:
            if longest < run:
                zero, longest = last, run
            run = 0
            continue
        if run == 0:
            last = i
        run += 1
    if longest < run:
        zero, longest = last, run
    out: list[str] = []
    end = 16
    if zero == 0:
        if ((longest == 5 and p[10] == 0xFF and p[11] == 0xFF) or longest == 6
                or (longest == 7 and p[14] != 0 and p[15] != 1)):
            end = 12
        out.append(":")
    i = 0
    while i < end:
        if i == zero:
            out.append(":")
            i += longest * 2
            continue
        out.append(f"{p[i] * 256 + p[i + 1]:x}")
        if i < 14:
            out.append(":")
        i += 2
    if end == 12:
        out.append(f"{p[12]}.{p[13]}.{p[14]}.{p[15]}")
    return "".join(out)


def ntop(fam: int, v: int) -> str:
    """ngx_sock_ntop without port."""
    if fam == 4:
        return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
    if fam == 6:
        return inet6_ntop(v)
    return "unix:"


# A connection's address arrives as text (``conn.client_addr``); parse each
# distinct text once per worker.  Bounded: cleared when it grows too big.
_KEYS: dict[str, tuple[int, int]] = {}
_KEYS_MAX = 4096


def addr_key(text: str) -> tuple[int, int]:
    """(family, int) of a client address text as the protocol or realip set it."""
    k = _KEYS.get(text)
    if k is not None:
        return k
    if text.startswith("unix:"):
        k = (0, 0)
    elif ":" in text:
        # a link-local peer may carry a zone ("fe80::1%eth0"): not part of the address
        k = (6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text.partition("%")[0]), "big"))
    else:
        k = (4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"))
    if len(_KEYS) >= _KEYS_MAX:
        _KEYS.clear()
    _KEYS[text] = k
    return k


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
        fams: tuple[int, ...] = (4, 6, 0)
        net = mask = 0
    elif value == "unix:":
        fams, net, mask = (0,), 0, 0
    else:
        c = ptocidr(value)
        if c is None:
            raise node.error(f'invalid parameter "{value}"')
        fam, net, mask, low_bits = c
        if low_bits:
            cf.cycle.warn(f"low address bits of {value} are meaningless", node)
        fams = (fam,)
    for fam in fams:
        attr = "v4" if fam == 4 else "v6" if fam == 6 else "un"
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
    if fam == 4:
        lst = rules.v4
    elif fam == 6:
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
            http.add_phase_handler("access", access_handler)
