"""Unit tests for portico.core.values against nginx's documented syntax.

Invariants:
- Exact values follow https://nginx.org/en/docs/syntax.html ("Configuration
  file measurement units"): k/K and m/M for sizes, g/G for offsets only,
  ms s m h d w M y for times, units combined from the most to the least
  significant and optionally separated by white space ("1h 30m" = 90m =
  5400s), a bare number means seconds, ``ms`` only where milliseconds are
  meaningful (nginx's msec slots).
- Validity is also checked against ``nginx -t`` itself (when installed) by
  putting each value into a directive of the matching slot type.
"""
from __future__ import annotations

import concurrent.futures

import pytest

from portico.core import values

from .difftool import have_nginx, run

K, M, G = 1024, 1024 ** 2, 1024 ** 3
MAX = 2 ** 63 - 1


# --- sizes and offsets ------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("0", 0), ("1024", 1024), ("8k", 8 * K), ("8K", 8 * K), ("1m", M), ("1M", M),
    ("007", 7), (str(MAX), MAX), (str(MAX // K) + "k", MAX // K * K),
])
def test_size_valid(text: str, expected: int) -> None:
    assert values.parse_size(text) == expected


@pytest.mark.parametrize("text", [
    "", "k", "m", "1g", "1G", "1kb", "1.5k", "-1", "+1", " 1", "1 ", "1 k", "0x10", "１", "²",
    str(MAX + 1), str(MAX // K + 1) + "k", str(MAX // M + 1) + "m",
])
def test_size_invalid(text: str) -> None:
    assert values.parse_size(text) is None


@pytest.mark.parametrize("text,expected", [
    ("0", 0), ("10", 10), ("8k", 8 * K), ("2m", 2 * M), ("1g", G), ("3G", 3 * G),
    (str(MAX // G) + "g", MAX // G * G),
])
def test_offset_valid(text: str, expected: int) -> None:
    assert values.parse_offset(text) == expected


@pytest.mark.parametrize("text", ["", "g", "1t", "1gb", "-1", str(MAX // G + 1) + "g"])
def test_offset_invalid(text: str) -> None:
    assert values.parse_offset(text) is None


@pytest.mark.parametrize("text,expected", [("0", 0), ("42", 42), (str(MAX), MAX)])
def test_number_valid(text: str, expected: int) -> None:
    assert values.parse_number(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "1k", "1.0", " 1", str(MAX + 1), "٣"])
def test_number_invalid(text: str) -> None:
    assert values.parse_number(text) is None


# --- times ----------------------------------------------------------------------------
@pytest.mark.parametrize("text,seconds", [
    ("0", 0), ("30", 30), ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400),
    ("1w", 604800), ("1M", 2592000), ("1y", 31536000),
    ("1h 30m", 5400), ("90m", 5400), ("5400s", 5400),         # the documented example
    ("1h30m", 5400), ("1y 6M", 31536000 + 6 * 2592000),
    ("1d 2h 3m 4s", 93784), ("1h  30m", 5400), ("1m 30", 90), ("1h 5", 3605),
    ("1m5", 65), (" 5", 5), ("5 ", 5), ("1hm", 3600),
])
def test_sec_valid(text: str, seconds: int) -> None:
    assert values.parse_sec(text) == seconds
    assert values.parse_time(text) == float(seconds)


@pytest.mark.parametrize("text", [
    "", " ", "s", "h", "1x", "1ms", "500ms", "1m1h", "1s1m", "1h1h", "1mm", "1.5h", "-1",
    "1 2 3", "10s 5 ", "1S", "1H", "1D", str(MAX // 31536000 + 1) + "y", str(MAX + 1),
])
def test_sec_invalid(text: str) -> None:
    assert values.parse_sec(text) is None
    assert values.parse_time(text) is None


@pytest.mark.parametrize("text,ms", [
    ("0", 0), ("30", 30000), ("500ms", 500), ("1s", 1000), ("1s 500ms", 1500), ("1s500ms", 1500),
    ("1h 30m", 5400000), ("1d2h3m4s5ms", 93784005), ("1w", 604800000), ("1m 30", 90000),
    ("10ms5", 5010),
])
def test_msec_valid(text: str, ms: int) -> None:
    assert values.parse_msec(text) == ms
    assert values.parse_time(text, default_unit_ms=True) == ms / 1000


@pytest.mark.parametrize("text", [
    "", "ms", "1y", "1M", "1ms 1s", "5ms5ms", "1x", "1.5s", str(MAX // 1000 + 1),
    str(MAX // 60000 + 1) + "m",
])
def test_msec_invalid(text: str) -> None:
    assert values.parse_msec(text) is None
    assert values.parse_time(text, default_unit_ms=True) is None


# --- agreement with nginx -t ---------------------------------------------------------------
#: (directive, context, parser): one directive per nginx slot type
SLOTS = {
    "size": ("client_header_buffer_size", values.parse_size),
    "off": ("client_max_body_size", values.parse_offset),
    "num": ("keepalive_requests", values.parse_number),
    "msec": ("send_timeout", values.parse_msec),
    "sec": ("ssl_session_timeout", values.parse_sec),
}

ORACLE_VALUES = [
    "0", "1", "8k", "8K", "1m", "1M", "1g", "1G", "1y", "1w", "1d", "2h", "30s", "500ms", "1h 30m",
    "1h30m", "1m1h", "1s 500ms", "1m 30", "1m5", " 5", "5 ", "1hm", "1 2", "10ms5", "1ms 1s", "k",
    "1kb", "1.5", "-1", "1S", str(MAX), str(MAX + 1), str(MAX // K + 1) + "k", "1 2 3",
]


def _oracle(slot: str, text: str) -> bool:
    directive = SLOTS[slot][0]
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    conf = f'events {{}}\nhttp {{\n{directive} "{quoted}";\n}}\n'
    return run("nginx", conf).ok


@pytest.fixture(scope="module")
def oracle() -> dict[tuple[str, str], bool]:
    if not have_nginx():
        pytest.skip("Debian's nginx is not installed")
    keys = [(slot, v) for slot in SLOTS for v in ORACLE_VALUES]
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        return dict(zip(keys, ex.map(lambda k: _oracle(*k), keys)))


@pytest.mark.parametrize("slot", sorted(SLOTS))
def test_validity_matches_nginx(slot: str, oracle: dict[tuple[str, str], bool]) -> None:
    parser = SLOTS[slot][1]
    wrong = [(v, oracle[(slot, v)]) for v in ORACLE_VALUES if (parser(v) is not None) != oracle[(slot, v)]]
    assert not wrong, f"(value, nginx accepts) where Portico disagrees: {wrong}"
