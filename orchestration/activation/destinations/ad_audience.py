"""Ad-platform audiences: per-platform normalisation, SHA-256 hashing, add and remove list files."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import TYPE_CHECKING, Any

import fsspec

from orchestration.activation.destinations import Batch, BatchResult, FieldType, TransientError
from orchestration.activation.destinations.files import encode, write_atomically

if TYPE_CHECKING:
    from orchestration.activation.config import AdAudienceDestination, SyncConfig

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
CONSENT_VALUES = {"granted", "denied", "unspecified"}

# platform -> (email column, phone column, phone keeps '+', gmail canonicalisation, base64 hash)
PLATFORMS: dict[str, tuple[str, str, bool, bool, bool]] = {
    "google_customer_match": ("Email", "Phone", True, False, False),
    "google_data_manager": ("email_address", "phone_number", True, True, False),
    "meta": ("EMAIL", "PHONE", False, False, False),
    "uid2": ("email_hash", "phone_hash", True, True, True),
}


class InvalidIdentifier(ValueError):
    """A value that cannot be normalised for a platform: never hash it as is."""


def normalise_email(value: str, platform: str) -> str:
    """Trim and lowercase; for Google's newer APIs and UID2, gmail.com/googlemail.com addresses
    also lose dots and any `+suffix` in the local part."""
    email = value.strip().lower()
    if not EMAIL.match(email):
        raise InvalidIdentifier(f"email {value!r} is not an address")
    local, _, domain = email.rpartition("@")
    if PLATFORMS[platform][3] and domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            raise InvalidIdentifier(f"email {value!r} has an empty local part")
    return f"{local}@{domain}"


def normalise_phone(value: str, platform: str, default_country_code: str | None = None) -> str:
    """E.164 with '+' (Google, UID2) or digits with country code and no '+' (Meta).

    Accepts '+<cc><number>', '00<cc><number>', or a national number (leading trunk 0 dropped)
    when a default country code is configured; anything else is rejected, not guessed."""
    text = PHONE_PUNCTUATION.sub("", value.strip())
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    elif default_country_code and text.isdigit():
        digits = default_country_code + text.lstrip("0")
    else:
        raise InvalidIdentifier(f"phone {value!r} has no country code")
    if not digits.isdigit() or digits.startswith("0") or not 8 <= len(digits) <= 15:
        raise InvalidIdentifier(f"phone {value!r} is not a valid E.164 number")
    if len(set(digits[-7:])) == 1:
        raise InvalidIdentifier(f"phone {value!r} is a placeholder")
    return ("+" + digits) if PLATFORMS[platform][2] else digits


def hash_identifier(normalised: str, platform: str) -> str:
    """SHA-256: lowercase hex, or Base64 of the raw 32 bytes for UID2."""
    digest = hashlib.sha256(normalised.encode("utf-8"))
    if PLATFORMS[platform][4]:
        return base64.b64encode(digest.digest()).decode("ascii")
    return digest.hexdigest()


class AdAudienceFiles:
    """Writes `<url>/<audience>/<platform>/{add,remove}-<batch id>.csv` of hashed identifiers
    and per-user consent (ad_user_data, ad_personalization: granted, denied or unspecified)."""

    def __init__(self, sync: "SyncConfig") -> None:
        self.sync = sync
        self.settings: AdAudienceDestination = sync.destination  # type: ignore[assignment]
        self.platform = self.settings.platform
        self.fs: fsspec.AbstractFileSystem | None = None
        self.folder = ""
        email_col, phone_col, *_ = PLATFORMS[self.platform]
        self.columns = [email_col, phone_col, *self.settings.consent_fields]

    def open(self, fields: list[FieldType]) -> None:
        self.fs, root = fsspec.core.url_to_fs(self.settings.url)
        self.folder = f"{root.rstrip('/')}/{self.settings.audience}/{self.platform}"
        self.fs.makedirs(self.folder, exist_ok=True)

    def member(self, fields: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Hashed identifiers and consent of one row, and the values that were rejected."""
        settings = self.settings
        email_col, phone_col, *_ = PLATFORMS[self.platform]
        out: dict[str, Any] = {email_col: None, phone_col: None}
        problems: list[str] = []
        for field_name, column, normalise in (
                (settings.email_field, email_col, lambda v: normalise_email(v, self.platform)),
                (settings.phone_field, phone_col, lambda v: normalise_phone(
                    v, self.platform, settings.default_country_code))):
            value = fields.get(field_name) if field_name else None
            if value is None or str(value).strip() == "":
                continue
            try:
                out[column] = hash_identifier(normalise(str(value)), self.platform)
            except InvalidIdentifier as exc:
                problems.append(str(exc))
        for consent in settings.consent_fields:
            value = str(fields.get(consent) or "unspecified").lower()
            out[consent] = value if value in CONSENT_VALUES else "unspecified"
        return out, problems

    def write(self, batch: Batch) -> BatchResult:
        assert self.fs is not None, "open() first"
        email_col, phone_col, *_ = PLATFORMS[self.platform]
        adds: list[dict[str, Any]] = []
        removes: list[dict[str, Any]] = []
        result = BatchResult()
        removal = batch.operation in ("delete", "remove")
        for row in batch.rows:
            member, problems = self.member(row.fields)
            has_identifier = member[email_col] is not None or member[phone_col] is not None
            if removal:
                if has_identifier:
                    removes.append(member)
                continue
            if not has_identifier:
                result.rejected[row.key] = "; ".join(problems) or "no email or phone to match on"
                continue
            if problems:
                result.warnings[row.key] = "; ".join(problems) + " (left out, other ids sent)"
            adds.append(member)
            if row.previous is not None:
                old, _ = self.member(row.previous)
                for column in (email_col, phone_col):  # remove only identifiers that changed
                    if old[column] == member[column]:
                        old[column] = None
                if old[email_col] is not None or old[phone_col] is not None:
                    removes.append(old)
        try:
            for kind, members in (("remove", removes), ("add", adds)):
                if members:
                    path = f"{self.folder}/{kind}-{batch.idempotency_key}.csv"
                    write_atomically(self.fs, path, encode(members, self.columns, "csv"))
        except OSError as exc:
            raise TransientError(f"cannot write audience file: {exc}") from exc
        return result

    def close(self) -> None:
        return None
