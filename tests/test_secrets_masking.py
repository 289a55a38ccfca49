"""Masking: keys by whole words, and every secret value in every log line of every logger."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import structlog

from activities.config import Settings
from activities.logs import configure_logging
from activities.masking import MASK, is_sensitive_key, mask, mask_text
from activities.secrets import SecretStore


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_password",
        "access_token",
        "refreshToken",
        "X-Api-Key",
        "api_key",
        "apiKey",
        "Authorization",
        "Set-Cookie",
        "private_key",
        "client_secret",
        "session_id",
        "token",
    ],
)
def test_keys_that_name_a_secret_are_masked(key: str) -> None:
    """A key with a sensitive word, whole, in any casing or separator style, is masked."""
    assert is_sensitive_key(key)
    assert mask({key: "value"}) == {key: MASK}


@pytest.mark.parametrize(
    "key",
    [
        "prompt_tokens",
        "total_tokens",
        "completion_tokens",
        "tokenizer",
        "author",
        "secretary",
        "monkey",
    ],
)
def test_keys_that_only_contain_a_sensitive_word_are_shown(key: str) -> None:
    """Token counts and words that merely contain `token` or `auth` keep their values."""
    assert not is_sensitive_key(key)
    assert mask({key: 12}) == {key: 12}


def test_every_logger_masks_every_secret_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A secret value from the environment or the secrets folder is masked in our log lines, in
    third-party loggers' messages and in exception text alike."""
    monkeypatch.setenv("STEPGATE_SECRET_ENVTOKEN", "env-secret-1234")
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "FILETOKEN").write_text("file-secret-5678\n")
    settings = Settings(stepgate_secrets_dir=folder, stepgate_log_format="json", _env_file=None)  # type: ignore[call-arg]
    assert SecretStore(folder).known_values() >= {"env-secret-1234", "file-secret-5678"}
    configure_logging(settings)
    try:
        structlog.get_logger("stepgate.test").warning("ours", url="https://x/?k=env-secret-1234")
        logging.getLogger("httpx").warning("GET https://x/?key=file-secret-5678 200")
        try:
            raise ValueError("bad env-secret-1234")
        except ValueError:
            logging.getLogger("temporalio.activity").exception("failed")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    assert "env-secret-1234" not in err and "file-secret-5678" not in err
    assert err.count(MASK) >= 3 and "GET https://x/?key=***" in err


SQUARE = "Sq+u/ar=e Tok3n"


@pytest.mark.parametrize(
    "shown",
    [
        SQUARE,
        SQUARE.lower(),
        SQUARE.upper(),
        quote(SQUARE),
        quote(SQUARE, safe=""),
        quote(SQUARE, safe="").lower(),
        quote_plus(SQUARE),
        "Sq+u/ar=e+Tok3n",  # a space sent as `+`
        "Sq u/ar=e Tok3n",  # a `+` a server decoded as a space
    ],
)
def test_values_are_masked_in_any_case_and_url_encoded(shown: str) -> None:
    """A secret value is masked in upper or lower case and percent-encoded in any mix, within
    longer text."""
    assert mask_text(f"GET https://{shown}.invalid/?k={shown}&x=1", {SQUARE}) == (
        "GET https://***.invalid/?k=***&x=1"
    )


def test_values_shorter_than_four_characters_and_other_text_are_kept() -> None:
    """Control: a 3-character secret is not masked, and text that merely shares letters stays."""
    assert mask_text("abc ABC", {"abc"}) == "abc ABC"
    assert mask_text("Sq+u/ar=e Tok3", {SQUARE}) == "Sq+u/ar=e Tok3"


def test_every_logger_masks_case_variants_and_encoded_forms(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log line that holds a secret lower-cased (a resolver's host) or URL-encoded (httpx's
    request line) shows it masked, in our loggers and third-party ones alike."""
    monkeypatch.setenv("STEPGATE_SECRET_SQUARE", SQUARE)
    settings = Settings(stepgate_log_format="json", _env_file=None)  # type: ignore[call-arg]
    configure_logging(settings)
    try:
        structlog.get_logger("stepgate.test").warning("lookup", host=f"{SQUARE.lower()}.invalid")
        logging.getLogger("httpx").warning("GET https://x/?k=%s 200", quote_plus(SQUARE))
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    assert "Tok3n" not in err and "tok3n" not in err
    assert "***.invalid" in err and "GET https://x/?k=*** 200" in err
