"""Email lookups by mailbox: the rules of staging's normalize_email, driven by the same dbt vars.

Staging stores the *mailbox* a spelling reaches (macros/normalization/normalize_email.sql):
display-name and `mailto:` forms parsed, lowercased, trailing dots removed, then the provider rules
of var `email_normalisation` (domain aliases, `+tag` removal, dots ignored) and the placeholder
vars. A lookup for `Rosa.Khan983+shop@GoogleMail.com` must find the identifier stored as
`rosakhan983@gmail.com`, so the API applies the same rules, read from dbt through the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestration.catalog import dbt_var


def _valid_address(address: str) -> bool:
    """The check of normalize_email: dbt var `email_pattern` (one home for the rule)."""
    return re.match(dbt_var("email_pattern"), address) is not None


@dataclass(frozen=True)
class MailboxRules:
    """The dbt vars `email_normalisation` and `placeholder_email*`, lowercased."""

    domain_aliases: Mapping[str, str]
    dots_ignored_domains: frozenset[str]
    subaddress_domains: frozenset[str]
    placeholder_emails: frozenset[str]
    placeholder_local_parts: frozenset[str]
    placeholder_domains: frozenset[str]

    @classmethod
    def from_vars(cls, normalisation: Mapping[str, Any], placeholder_emails: Sequence[str],
                  placeholder_local_parts: Sequence[str],
                  placeholder_domains: Sequence[str]) -> MailboxRules:
        def lowered(values: Sequence[str] | None) -> frozenset[str]:
            return frozenset(v.lower() for v in values or [])

        return cls(
            domain_aliases={k.lower(): v.lower()
                            for k, v in (normalisation.get("domain_aliases") or {}).items()},
            dots_ignored_domains=lowered(normalisation.get("dots_ignored_domains")),
            subaddress_domains=lowered(normalisation.get("subaddress_domains")),
            placeholder_emails=lowered(placeholder_emails),
            placeholder_local_parts=lowered(placeholder_local_parts),
            placeholder_domains=lowered(placeholder_domains),
        )


def mailbox_rules() -> MailboxRules:
    """The project's rules, the dbt vars in dbt_project.yml (no manifest needed: the API process)."""
    return MailboxRules.from_vars(
        dbt_var("email_normalisation"), dbt_var("placeholder_emails"),
        dbt_var("placeholder_email_local_parts"), dbt_var("placeholder_email_domains"))


def email_address(value: str) -> str | None:
    """The address as written (macro email_address): out of `Name <a@b>` and `mailto:a@b?..`
    forms, trimmed, lowercased, trailing dots removed; None when nothing is left."""
    inside_brackets = value.split("<")[-1].split(">")[0]
    without_mailto = inside_brackets.strip().lower().replace("mailto:", "").split("?")[0]
    address = without_mailto.strip().rstrip(".")
    return address or None


def mailbox(value: str, rules: MailboxRules) -> str | None:
    """The mailbox staging stores for this spelling (macro normalize_email), None when the
    address is invalid or a placeholder (staging keeps no identifier for it)."""
    address = email_address(value)
    if address is None or not _valid_address(address):
        return None
    local, domain = address.split("@")[0], address.split("@")[1]
    domain = rules.domain_aliases.get(domain, domain)
    if domain in rules.subaddress_domains:
        local = local.split("+")[0]
    if domain in rules.dots_ignored_domains:
        local = local.replace(".", "")
    found = f"{local}@{domain}"
    if (not local or found in rules.placeholder_emails or local in rules.placeholder_local_parts
            or domain in rules.placeholder_domains):
        return None
    return found
