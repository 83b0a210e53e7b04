"""The one place every text a stage prints passes through before nb2pipe writes or shows it.

The runner sends each line of a stage's output (stdout, stderr, the placeholders of rich
outputs) through `redact` before it reaches the stage's log file, the run's events and the
sidebar. Today it changes nothing; a later change will remove the values of the stage's
secrets here, and only here.
"""

from __future__ import annotations


def redact(text: str) -> str:
    """`text` as nb2pipe may write it: for now unchanged (the identity). Secrets will be removed
    here; every output text goes through this function, so that is the only change needed."""
    return text
