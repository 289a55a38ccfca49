"""Retry policies and timeouts that Stepgate's own activities use, named once."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from workflows.language.definition import Defaults, RetrySpec
from workflows.language.durations import parse_duration

# Gate notifications and reminders: a few quick tries; a dead webhook must not hold a gate.
NOTIFY_TIMEOUT = timedelta(seconds=30)
NOTIFY_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))

# Compensation must get through if at all possible.
COMPENSATE_TIMEOUT = timedelta(minutes=5)
COMPENSATE_RETRY = RetryPolicy(
    maximum_attempts=10,
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
)


def retry_policy(spec: RetrySpec | None, defaults: Defaults) -> RetryPolicy:
    spec = spec or defaults.retry
    return RetryPolicy(
        initial_interval=parse_duration(spec.initial_interval),
        backoff_coefficient=spec.backoff,
        maximum_interval=parse_duration(spec.max_interval) if spec.max_interval else None,
        maximum_attempts=spec.max_attempts,
        non_retryable_error_types=list(spec.non_retryable) or None,
    )


# Checks of a patch or a child's input run as local activities: quick, retried a few times.
CHECK_TIMEOUT = timedelta(seconds=10)
CHECK_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200))
# A for_each list read back from the artifact store: a file read, tried a few times
# (a store that is briefly unreachable must not fail the step; a missing file fails at once).
LOAD_LIST_TIMEOUT = timedelta(seconds=30)
LOAD_LIST_RETRY = RetryPolicy(
    maximum_attempts=10,
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
)
# A plan is checked in a regular activity: validating a whole definition may take a while.
PLAN_TIMEOUT = timedelta(seconds=60)

# Moving audit chunks to the artifact store, and the owner check of a scheduled run, must get
# through eventually; the run waits for them.
ARCHIVE_TIMEOUT = timedelta(seconds=30)
ARCHIVE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
AUTHORIZE_TIMEOUT = timedelta(seconds=10)
AUTHORIZE_RETRY = RetryPolicy(
    maximum_attempts=10,
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
)

# A governed run's questions to the LLM (planner, assessor) and its search of the memory: a few
# tries; the run fails (planning) or goes on without (memory, assessor) when they do not answer.
LLM_TIMEOUT = timedelta(minutes=2)
LLM_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
SEARCH_TIMEOUT = timedelta(seconds=10)
SEARCH_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=500))
# Remembering must get through: the run waits in phase `remember` while the database is down.
MEMORY_WRITE_TIMEOUT = timedelta(seconds=30)
MEMORY_WRITE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
