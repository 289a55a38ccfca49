"""Slack's request signature (api/slack_signature.py) against the ways a forged or replayed
interaction arrives: every one is refused, saying why, and only the genuine request passes."""

from __future__ import annotations

import pytest

from api.slack_signature import (
    MAX_BODY_BYTES,
    MAX_REMEMBERED,
    MAX_SKEW_S,
    Replays,
    SignatureRefused,
    sign,
    verify,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_800_000_000.0
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"


def refused(timestamp: str | None, signature: str | None, body: bytes = BODY) -> str:
    with pytest.raises(SignatureRefused) as err:
        verify(SECRET, timestamp, signature, body, NOW)
    return err.value.reason


def test_a_genuine_request_passes() -> None:
    """The signature Slack computes over `v0:timestamp:body` is accepted, up to the skew."""
    stamp = str(int(NOW))
    verify(SECRET, stamp, sign(SECRET, stamp, BODY), BODY, NOW)
    late = str(int(NOW) - MAX_SKEW_S)
    verify(SECRET, late, sign(SECRET, late, BODY), BODY, NOW)


def test_slacks_documented_example_verifies() -> None:
    """Slack's own worked example (api.slack.com, "Verifying requests") gives its signature."""
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
        b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook"
        b"-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977"
        b"00885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d"
        b"10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert sign(SECRET, "1531420618", body) == expected
    verify(SECRET, "1531420618", expected, body, 1531420618.0)


def test_a_bad_signature_is_refused() -> None:
    """A signature made with another secret does not match."""
    stamp = str(int(NOW))
    assert "does not match" in refused(stamp, sign("another-secret", stamp, BODY))


def test_a_modified_body_under_a_valid_signature_is_refused() -> None:
    """Replaying a genuine request with its body changed (another action, gate or user) fails."""
    stamp = str(int(NOW))
    signature = sign(SECRET, stamp, BODY)
    assert "does not match" in refused(stamp, signature, BODY.replace(b"block", b"black"))
    assert "does not match" in refused(str(int(NOW) - 1), signature)


@pytest.mark.parametrize("offset", [MAX_SKEW_S + 1, -(MAX_SKEW_S + 1), 86_400 * 365])
def test_an_old_or_future_timestamp_is_refused(offset: int) -> None:
    """A timestamp more than five minutes from now is refused, however well signed."""
    stamp = str(int(NOW) - offset)
    assert f"{MAX_SKEW_S} s" in refused(stamp, sign(SECRET, stamp, BODY))


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [(None, "v0=" + "0" * 64), (str(int(NOW)), None), (None, None)],
)
def test_missing_headers_are_refused(timestamp: str | None, signature: str | None) -> None:
    """Without both headers nothing is checked further."""
    assert "required" in refused(timestamp, signature)


@pytest.mark.parametrize(
    "timestamp", ["", "-1", "1.8e9", "١٨٠٠٠٠٠٠٠٠", "9" * 13, " 1800000000", "0x6b49d200"]
)
def test_a_malformed_timestamp_is_refused(timestamp: str) -> None:
    """Only a plain, short run of ASCII digits is a timestamp."""
    assert "Unix time" in refused(timestamp, "v0=" + "0" * 64)


@pytest.mark.parametrize(
    "signature",
    ["", "v0=", "v1=" + "0" * 64, "v0=" + "0" * 63, "v0=" + "0" * 10_000, "v0=" + "é" * 64],
)
def test_a_malformed_signature_is_refused(signature: str) -> None:
    """A signature of the wrong version, length or alphabet is refused before any MAC."""
    reason = refused(str(int(NOW)), signature)
    assert "malformed" in reason or "does not match" in reason


def test_an_oversized_body_is_refused_before_any_mac() -> None:
    """A body over the bound is refused even when it is signed."""
    stamp = str(int(NOW))
    body = b"x" * (MAX_BODY_BYTES + 1)
    assert f"{MAX_BODY_BYTES} bytes" in refused(stamp, sign(SECRET, stamp, body), body)


def test_no_secret_refuses_everything() -> None:
    """Without a configured signing secret no request is Slack's (an empty secret signs too)."""
    stamp = str(int(NOW))
    with pytest.raises(SignatureRefused, match="no signing secret"):
        verify("", stamp, sign("", stamp, BODY), BODY, NOW)


def test_an_exact_replay_is_refused_while_its_timestamp_could_pass() -> None:
    """The same signature is accepted once within the window, and forgotten after it."""
    replays = Replays()
    assert replays.first("v0=a", NOW)
    assert not replays.first("v0=a", NOW + 2 * MAX_SKEW_S - 1)
    assert replays.first("v0=b", NOW)
    assert replays.first("v0=a", NOW + 2 * MAX_SKEW_S + 1)


def test_the_replay_memory_is_bounded() -> None:
    """Past MAX_REMEMBERED signatures the oldest are forgotten first."""
    replays = Replays()
    for i in range(MAX_REMEMBERED + 5):
        assert replays.first(f"v0={i}", NOW)
    assert len(replays._seen) <= MAX_REMEMBERED
    assert not replays.first(f"v0={MAX_REMEMBERED + 4}", NOW)
