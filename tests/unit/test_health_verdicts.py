"""Health's verdicts (server/health.py): a timeout while the process was saturated is not
counted against a dependency, for a bounded number of checks."""

from __future__ import annotations

from server.health import INCONCLUSIVE_LIMIT, Verdicts


def test_answers_and_failures_count_at_once():
    verdicts = Verdicts(2.0)
    assert verdicts.settle("postgres", True, saturated=True, previous=False) is True
    assert verdicts.settle("postgres", False, saturated=True, previous=True) is False


def test_a_timeout_of_an_idle_process_is_unreachable():
    assert Verdicts(2.0).settle("postgres", None, saturated=False, previous=True) is False


def test_a_timeout_of_a_saturated_process_keeps_the_status_a_bounded_number_of_checks():
    verdicts = Verdicts(2.0)
    kept = [verdicts.settle("postgres", None, saturated=True, previous=True) for _ in range(INCONCLUSIVE_LIMIT)]
    assert kept == [True] * INCONCLUSIVE_LIMIT
    # Still no answer: a dependency that hangs while the server is saturated is reported.
    assert verdicts.settle("postgres", None, saturated=True, previous=True) is False


def test_an_answer_resets_the_count_and_each_dependency_counts_apart():
    verdicts = Verdicts(2.0)
    assert verdicts.settle("redis", None, saturated=True, previous=True) is True
    assert verdicts.settle("postgres", None, saturated=True, previous=True) is True
    assert verdicts.settle("redis", True, saturated=True, previous=True) is True
    assert [verdicts.settle("redis", None, saturated=True, previous=True) for _ in range(INCONCLUSIVE_LIMIT)] == [
        True
    ] * INCONCLUSIVE_LIMIT
    # postgres's own count is at one: its second timeout in a row is still not counted.
    assert verdicts.settle("postgres", None, saturated=True, previous=True) is True


def test_the_first_check_has_nothing_to_keep():
    assert Verdicts(2.0).settle("postgres", None, saturated=True, previous=None) is False
