"""Health's verdicts (server/health.py): a timeout while the process was saturated is not
counted against a dependency, for a bounded number of checks."""

from __future__ import annotations

from collections.abc import Callable

import redis.exceptions
from kombu.exceptions import OperationalError

from server.broker.probe import timed_out
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


def _raised(make: Callable[[], None]) -> BaseException:
    try:
        make()
    except BaseException as error:
        return error
    raise AssertionError("nothing was raised")


def _kombu_from(cause: BaseException) -> None:
    # As kombu re-raises a transport's error: its own error, raised while handling the cause.
    try:
        raise cause
    except type(cause):
        raise OperationalError(str(cause)) from None


def test_a_broker_timeout_is_told_apart_from_a_refusal_through_kombus_wrapping():
    assert timed_out(_raised(lambda: _kombu_from(redis.exceptions.TimeoutError("Timeout reading from socket"))))
    assert timed_out(_raised(lambda: _kombu_from(TimeoutError("timed out"))))
    assert not timed_out(_raised(lambda: _kombu_from(ConnectionRefusedError(111, "refused"))))
    assert not timed_out(_raised(lambda: _kombu_from(redis.exceptions.ConnectionError("refused"))))
