"""nginx's address parsing, printing and matching (src/core/ngx_inet.c), once.

Ported routine for routine, quirk for quirk: ngx_inet_addr, ngx_inet6_addr,
ngx_ptocidr, ngx_parse_addr, ngx_parse_addr_port, ngx_inet6_ntop,
ngx_sock_ntop (without port), ngx_cidr_match, and the X-Forwarded-For walk
of src/http/ngx_http_core_module.c (ngx_http_get_forwarded_addr), which needs
nothing of HTTP but the header values.  Used by access, realip and geo (and
meant for limit_req/limit_conn and the stream modules).

Invariants:
- An address is an ``Addr``: ``(family, int)`` with family ``V4`` (4, a
  32-bit int), ``V6`` (6, a 128-bit int) or ``UNIX`` (0, int 0: a
  unix-domain socket, which has no address).  Where a port travels with it
  (``parse_addr_port``, ``forwarded_addr``) it is an ``AddrPort``
  ``(family, int, port)``, port 0 when none was given.  A network is a
  ``Cidr`` (family, network, mask, low_bits) with the mask as an int of the
  family's width; ``Cidr.prefix`` is its length.
- Parsers take ``str`` (configuration words, header values), return None
  where nginx returns NGX_ERROR / NGX_DECLINED / INADDR_NONE, and never
  raise.  Only ASCII digits and hex letters count; anything else refuses
  the text.  Integers only: no ``ipaddress`` objects, no ``inet_pton`` on
  configuration or header text (it differs from nginx, see below).
- Kept nginx quirks, because configurations and clients that nginx accepts
  (or refuses) must be accepted (or refused) alike:
  * ngx_inet_addr: an empty octet is 0 ("1..2.3" is 1.0.2.3, "1.2.3." is
    1.2.3.0), leading zeros are decimal ("01.2.3.4" is 1.2.3.4), exactly
    three dots, and 255.255.255.255 equals INADDR_NONE so it is refused like
    invalid text (geo special-cases that very string itself, as nginx does).
  * ngx_inet6_addr: no brackets, no zone ids ("%eth0"), at most four hex
    digits a group, one "::", a trailing dotted quad (parsed by
    ngx_inet_addr, quirks included) in the last 32 bits only.
  * ngx_ptocidr: the prefix is ngx_atoi (digits only, "0024" is 24, no sign,
    not empty); host bits below the prefix are cleared and reported
    (``low_bits``: NGX_DONE, the caller warns "low address bits of ... are
    meaningless").
  * ngx_parse_addr_port: a bare address first (so "::1" is never a port),
    then "addr:port" split at the first ':' or "[v6]:port"; port 1..65535.
  * ngx_inet6_ntop: the longest run of two or more zero groups (the first
    one on a tie) becomes "::"; an address of 80 zero bits then ffff, or of
    96 zero bits then a nonzero group, or of 112 zero bits then a group whose
    high byte is not 0 and low byte not 1, prints its last 32 bits as a
    dotted quad ("::ffff:1.2.3.4", "::1.2.3.4", "::0.0.1.2" for ::102; but
    "::1", "::5", "::101").
  * ngx_cidr_match: an IPv4-mapped IPv6 address is matched as IPv4 (against
    IPv4 networks only); a unix-domain client matches a "unix:" entry.
- The peer address of a connection (``conn.client_addr``, the text the OS
  gave us) is converted by ``addr_key`` with ``inet_pton`` and a zone id
  dropped, cached per process: it is not configuration text.
"""
from __future__ import annotations

import socket
from typing import NamedTuple

from .values import parse_number as _atoi

UNIX, V4, V6 = 0, 4, 6  # address families (no port, no address for UNIX)
ALL32 = 0xFFFFFFFF
ALL128 = (1 << 128) - 1
INADDR_NONE = ALL32

Addr = tuple[int, int]  # (family, address as an int)
AddrPort = tuple[int, int, int]  # (family, address as an int, port or 0)


# --- parsing -------------------------------------------------------------------------------


def inet_addr(s: str) -> int | None:
    """ngx_inet_addr: dotted quad -> int; None for INADDR_NONE.

    Empty octets count as 0 ("1..2.3" is 1.0.2.3), leading zeros are
    decimal, and 255.255.255.255 equals INADDR_NONE so it is refused like
    any invalid text."""
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
    return None if addr == INADDR_NONE else addr


def inet6_addr(s: str) -> int | None:
    """ngx_inet6_addr: IPv6 text (with an optional trailing dotted quad) ->
    128-bit int, None when nginx refuses it (no zone ids, no brackets).

    Follows nginx's pointers: ``a`` is its ``addr``, ``zero`` where "::"
    stands, ``digit`` the start of the group after the last ':'."""
    length = len(s)
    if length == 0:
        return None
    out = bytearray(16)
    a = 0
    zero = -1
    digit = -1
    nibbles = word = 0
    n = 8  # groups still to write
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
        if 97 <= lc <= 102:  # a-f, as nginx's ``c |= 0x20``
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
        gap = n * 2  # the groups after "::" move right, zeros fill the gap
        out[zero + gap:a + gap] = out[zero:a]
        out[zero:zero + gap] = bytes(gap)
    elif zero >= 0:
        return None
    return int.from_bytes(out, "big")


def parse_addr(s: str) -> Addr | None:
    """ngx_parse_addr: an IPv4 address (ngx_inet_addr), else an IPv6 one."""
    v4 = inet_addr(s)
    if v4 is not None:
        return V4, v4
    v6 = inet6_addr(s)
    if v6 is not None:
        return V6, v6
    return None


def parse_addr_port(s: str) -> AddrPort | None:
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


class Cidr(NamedTuple):
    """nginx's ngx_cidr_t, and whether ngx_ptocidr cleared host bits."""
    family: int  # V4 or V6
    addr: int  # the network: host bits already cleared
    mask: int  # 32- or 128-bit
    low_bits: bool = False  # NGX_DONE: "low address bits of ... are meaningless"

    @property
    def prefix(self) -> int:
        """The prefix length (the mask is always contiguous)."""
        return self.mask.bit_count()


def ptocidr(text: str) -> Cidr | None:
    """ngx_ptocidr: "addr[/bits]"; None is NGX_ERROR.  Without "/bits" the
    mask is all ones."""
    slash = text.find("/")
    addr_text = text if slash < 0 else text[:slash]
    v = inet_addr(addr_text)
    if v is not None:
        fam, full, bits = V4, ALL32, 32
    else:
        v = inet6_addr(addr_text)
        if v is None:
            return None
        fam, full, bits = V6, ALL128, 128
    if slash < 0:
        return Cidr(fam, v, full)
    shift = _atoi(text[slash + 1:])
    if shift is None or shift > bits:
        return None
    mask = (full << (bits - shift)) & full
    return Cidr(fam, v & mask, mask, v & mask != v)


def addr_key(text: str) -> Addr:
    """The Addr of a connection's peer text (``conn.client_addr`` as the
    protocol or realip set it): "unix:" is UNIX; a link-local peer's zone
    ("fe80::1%eth0") is not part of the address.  Cached per process."""
    k = _KEYS.get(text)
    if k is not None:
        return k
    if text.startswith("unix:"):
        k = (UNIX, 0)
    elif ":" in text:
        k = (V6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text.partition("%")[0]), "big"))
    else:
        k = (V4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"))
    if len(_KEYS) >= _KEYS_MAX:
        _KEYS.clear()
    _KEYS[text] = k
    return k


# each distinct peer text is parsed once per worker; cleared when it grows too big
_KEYS: dict[str, Addr] = {}
_KEYS_MAX = 4096


# --- printing ------------------------------------------------------------------------------


def inet6_ntop(v: int) -> str:
    """ngx_inet6_ntop: nginx's text for an IPv6 address (see the module
    docstring for when it ends in a dotted quad)."""
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
    """ngx_sock_ntop without port: "1.2.3.4", nginx's IPv6 text, "unix:"."""
    if fam == V4:
        return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
    if fam == V6:
        return inet6_ntop(v)
    return "unix:"


# --- matching ------------------------------------------------------------------------------


def unmap_v4(fam: int, v: int) -> Addr:
    """An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as IPv4; others as they are."""
    if fam == V6 and v >> 32 == 0xFFFF:
        return V4, v & ALL32
    return fam, v


class CidrSet:
    """An ngx_cidr_t array (set_real_ip_from, geo's ``proxy``), by family;
    ``match`` is ngx_cidr_match."""
    __slots__ = ("v4", "v6", "unix")

    def __init__(self) -> None:
        self.v4: list[tuple[int, int]] = []  # (mask, net)
        self.v6: list[tuple[int, int]] = []
        self.unix = False  # a "unix:" entry

    def add(self, fam: int, net: int, mask: int) -> None:
        (self.v4 if fam == V4 else self.v6).append((mask, net))

    def match(self, fam: int, a: int) -> bool:
        """ngx_cidr_match: an IPv4-mapped IPv6 address is an IPv4 one here."""
        fam, a = unmap_v4(fam, a)
        if fam == UNIX:
            return self.unix
        for mask, net in self.v4 if fam == V4 else self.v6:
            if a & mask == net:
                return True
        return False


# --- X-Forwarded-For (ngx_http_get_forwarded_addr) -----------------------------------------

_OK, _DONE, _DECLINED = 0, 1, 2


def _forwarded_one(addr: AddrPort, xff: str, trusted: CidrSet, recursive: bool) -> tuple[int, AddrPort]:
    """ngx_http_get_forwarded_addr_internal over one header value: while
    ``addr`` is trusted, take the right-most element (an address, with an
    optional port) and, when recursive, keep walking left."""
    found = False
    end = len(xff)  # nginx's xfflen
    while True:
        if not trusted.match(addr[0], addr[1]):
            return (_DONE if found else _DECLINED), addr
        p = end - 1
        while p > 0 and xff[p] in " ,":  # drop trailing separators
            p -= 1
            end -= 1
        while p > 0:  # back to the separator before the last element
            if xff[p] in " ,":
                p += 1
                break
            p -= 1
        # p < 0 only for an empty rest, where nginx reads the byte before the
        # value (never an address): refused
        parsed = parse_addr_port(xff[p:end]) if p >= 0 else None
        if parsed is None:
            return (_DONE if found else _DECLINED), addr
        addr = parsed
        found = True
        end = p - 1
        if not (recursive and p > 0):
            return _OK, addr


def forwarded_addr(addr: AddrPort, values: list[str], trusted: CidrSet, recursive: bool) -> AddrPort | None:
    """ngx_http_get_forwarded_addr: the address a chain of trusted proxies
    forwarded for ``addr``; several header lines (``values`` in arrival
    order) are walked from the last one.  None when the address stays as it
    is (NGX_DECLINED)."""
    rc = _DECLINED
    found = False
    for xff in reversed(values):
        rc, addr = _forwarded_one(addr, xff, trusted, recursive)
        if not recursive:
            break
        if rc == _DECLINED and found:
            rc = _DONE
            break
        if rc != _OK:
            break
        found = True
    return None if rc == _DECLINED else addr
