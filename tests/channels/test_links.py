"""Approvers' signed links (activities/links.py): what verifies, and every way a token is refused."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from activities.config import Settings
from activities.links import (
    MAX_TOKEN_CHARS,
    LinkClaims,
    LinkRefused,
    gate_page_url,
    link_url,
    mint,
    new_nonce,
    verify,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
OLD, NEW = os.urandom(32), os.urandom(32)
RING = {"old": OLD, "new": NEW}


def claims(**over: object) -> LinkClaims:
    fields: dict[str, object] = {
        "workflow_id": "deploy-42",
        "gate": "approve",
        "round": 1,
        "digest": "sha256:abc",
        "principal": "alice",
        "expires": NOW + timedelta(hours=72),
        "nonce": new_nonce(),
    }
    return LinkClaims.model_validate(fields | over)


def refused(token: str, ring: dict[str, bytes] = RING, now: datetime = NOW) -> str:
    with pytest.raises(LinkRefused) as err:
        verify(token, ring, now)
    assert not token or token not in str(err.value)
    return err.value.reason


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_minted_link_verifies_to_its_claims() -> None:
    """A token verifies under the keyring it was signed from and gives back exactly its claims,
    URL-safe as it is."""
    mine = claims(workflow_id="run/with spaces?&", gate="g#1")
    token = mint(mine, RING, "new")
    assert verify(token, RING, NOW) == mine
    assert all(c.isalnum() or c in "-_." for c in token)


def test_rotated_out_key_still_verifies_until_removed() -> None:
    """A link signed under the old key id verifies while that id is in the ring, and is refused
    as unknown_key once the operator removes it."""
    token = mint(claims(), RING, "old")
    assert verify(token, {"old": OLD, "new": NEW}, NOW).principal == "alice"
    assert refused(token, {"new": NEW}) == "unknown_key"


def test_tampered_payload_refused_as_bad_signature() -> None:
    """Changing the principal (or any claim) in the payload breaks the signature."""
    kid, payload, sig = mint(claims(), RING, "new").split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["principal"] = "mallory"
    forged = b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    assert refused(f"{kid}.{forged}.{sig}") == "bad_signature"


def test_other_key_id_refused() -> None:
    """Relabelling a token with another key id of the ring does not verify, and one signed by a
    key the ring lacks under a known id neither."""
    _, payload, sig = mint(claims(), RING, "old").split(".")
    assert refused(f"{b64(b'new')}.{payload}.{sig}") == "bad_signature"
    stranger = mint(claims(), {"new": os.urandom(32)}, "new")
    assert refused(stranger) == "bad_signature"
    assert refused(mint(claims(), {"gone": OLD}, "gone")) == "unknown_key"


def test_truncated_token_refused() -> None:
    """A token cut short (a mail client wrapping the URL) is refused, never half-read."""
    token = mint(claims(), RING, "new")
    assert refused(token[:-5]) == "bad_signature"
    assert refused(token.rsplit(".", 1)[0]) == "malformed"
    assert refused("") == "malformed"


def test_expired_link_refused_at_its_expiry() -> None:
    """A link works up to its expiry and is refused from that second on."""
    token = mint(claims(expires=NOW + timedelta(hours=1)), RING, "new")
    assert verify(token, RING, NOW + timedelta(minutes=59)).gate == "approve"
    assert refused(token, now=NOW + timedelta(hours=1)) == "expired"


@pytest.mark.parametrize(
    "token",
    [
        "a" * (MAX_TOKEN_CHARS + 1),
        "a.b.c.d",
        "a.b",
        "YQ.b+c.ZA",
        "bm90IGEga2V5IGlk!!.YQ.ZA",
        f"{b64(b'../etc')}.YQ.ZA",
        "\u00e9.\u00e9.\u00e9",
    ],
)
def test_malformed_or_oversized_token_refused(token: str) -> None:
    """Oversized tokens, wrong part counts, characters outside base64url and bad key ids are
    refused as malformed before any signature work."""
    assert refused(token) == "malformed"


def test_signed_garbage_payload_refused_as_malformed() -> None:
    """Even a correctly signed payload must be the claims: a signed non-object is malformed."""
    from activities.links import _signature

    kid, payload = b64(b"new"), b64(b"[1,2]")
    token = f"{kid}.{payload}.{b64(_signature(NEW, kid, payload))}"
    assert refused(token) == "malformed"


def test_mint_refuses_claims_too_long_for_a_token() -> None:
    """Claims at every bound still make a token of bounded size; there is no unbounded token."""
    big = claims(workflow_id="w" * 1_000, gate="g" * 1_000, digest="d" * 200, principal="p" * 200)
    assert len(mint(big, RING, "new")) <= MAX_TOKEN_CHARS


def test_urls_quote_ids_and_carry_no_token_on_the_gate_page() -> None:
    """The gate page URL quotes the ids (a slash stays inside its segment); the link URL is the
    link page under the public URL."""
    assert gate_page_url("https://sg.example/", "a/b c", "g?1") == (
        "https://sg.example/ui/runs/a%2Fb%20c/gates/g%3F1"
    )
    assert link_url("https://sg.example", "T.O.K") == "https://sg.example/ui/links/T.O.K"


def test_link_keys_read_like_the_encryption_keys() -> None:
    """STEPGATE_LINK_KEYS plus STEPGATE_LINK_KEY form one ring under STEPGATE_LINK_KEY_ID, kept
    out of repr; a bad one stops the process without echoing a key."""
    old, new = base64.b64encode(OLD).decode(), base64.b64encode(NEW).decode()
    settings = Settings(
        stepgate_link_keys=f"old:{old}",
        stepgate_link_key=new,
        stepgate_link_key_id="new",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert settings.link_keyring() == {"old": OLD, "new": NEW}
    assert old not in repr(settings) and new not in repr(settings)
    with pytest.raises(ValueError) as err:
        Settings(stepgate_link_keys=f"old:{old}", _env_file=None)  # type: ignore[call-arg]
    assert "STEPGATE_LINK_KEY_ID='default' is not in STEPGATE_LINK_KEYS" in str(err.value)
    assert old not in str(err.value)
