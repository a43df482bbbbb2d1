"""Differential tests of the configuration language: ``portico -t`` vs ``nginx -t``.

Invariants:
- For every case in ``cases.CASES`` both programs test the same files in
  their own fresh prefix; they must agree on the outcome (ok / failed) and,
  for failures, on the ``[emerg]`` message including ``in FILE:LINE``
  (program name, time stamp and prefix normalised away; see difftool).
- Cases with ``xfail`` name a Portico bug outside the configuration layer;
  they are strict, so a fix turns them into failures to be un-marked.
- All runs happen once per session, in parallel, before the first assertion.
"""
from __future__ import annotations

import concurrent.futures
import os

import pytest

from .cases import CASES, Case
from .difftool import Outcome, have_nginx, run

pytestmark = pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")


def _both(case: Case) -> tuple[Outcome, Outcome]:
    return (run("nginx", case.conf, case.files, case.extra),
            run("portico", case.conf, case.files, case.extra))


@pytest.fixture(scope="session")
def outcomes() -> dict[str, tuple[Outcome, Outcome]]:
    workers = max(2, min(16, (os.cpu_count() or 2) * 2))
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        return dict(zip((c.id for c in CASES), ex.map(_both, CASES)))


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


def test_case_ids_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


def test_corpus_is_balanced() -> None:
    ok = sum(c.id.startswith("ok_") for c in CASES)
    err = sum(c.id.startswith("err_") for c in CASES)
    assert ok + err == len(CASES) and ok >= 20 and err >= 50


def test_case_names_tell_nginx_outcome(outcomes: dict[str, tuple[Outcome, Outcome]]) -> None:
    """``ok_*`` cases pass ``nginx -t``, ``err_*`` cases fail it: the corpus stays honest."""
    wrong = [f"{cid}: {n}" for cid, (n, _) in outcomes.items() if n.ok != cid.startswith("ok_")]
    assert not wrong


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_same_as_nginx(case: Case, outcomes: dict[str, tuple[Outcome, Outcome]]) -> None:
    nginx, portico = outcomes[case.id]
    assert portico == nginx, f"\n  nginx:   {nginx}\n  portico: {portico}"
