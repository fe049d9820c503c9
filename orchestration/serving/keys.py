"""API keys of the profile API: a YAML file (CDP_API_KEYS_FILE) of named keys and their scopes.

```yaml
keys:
  - name: website                      # who calls; appears in the access log
    key_env: CDP_API_KEY_WEBSITE       # the secret is read from this environment variable
    scopes: [profiles:read]
  - name: support-desk
    key_sha256: 9f86d081884c7d65...    # or the SHA-256 (hex) of the secret, never the secret
    scopes: [profiles:read, pii:read]
```
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

KEYS_FILE_ENV = "CDP_API_KEYS_FILE"
Scope = Literal["profiles:read", "pii:read"]
PROFILES_READ: Scope = "profiles:read"
PII_READ: Scope = "pii:read"


class KeyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    key_env: str | None = None
    key_sha256: str | None = None
    scopes: list[Scope]

    @model_validator(mode="after")
    def one_secret(self) -> "KeyConfig":
        if (self.key_env is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of key_env or key_sha256")
        if self.key_sha256 is not None and len(self.key_sha256) != 64:
            raise ValueError("key_sha256 must be 64 hex digits")
        return self


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyConfig]


class KeyConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ApiKey:
    name: str
    scopes: frozenset[str]


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Resolves a presented secret to its key, comparing SHA-256 digests in constant time."""

    def __init__(self, keys: dict[str, ApiKey]) -> None:
        self._by_digest = keys

    @classmethod
    def from_secrets(cls, secrets: dict[str, tuple[str, set[str] | frozenset[str]]]) -> "KeyStore":
        """{secret: (name, scopes)}: for tests and embedding."""
        return cls({hash_key(secret): ApiKey(name, frozenset(scopes))
                    for secret, (name, scopes) in secrets.items()})

    @classmethod
    def from_file(cls, path: Path, environ: dict[str, str] | None = None) -> "KeyStore":
        environ = dict(os.environ if environ is None else environ)
        try:
            parsed = KeysFile.model_validate(yaml.safe_load(path.read_text()) or {})
        except FileNotFoundError as exc:
            raise KeyConfigError(f"{path}: API keys file not found") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise KeyConfigError(f"{path}: {where}: {first['msg']}") from exc
        keys: dict[str, ApiKey] = {}
        for index, entry in enumerate(parsed.keys):
            if entry.key_env is not None:
                secret = environ.get(entry.key_env, "")
                if not secret:
                    raise KeyConfigError(f"{path}: keys[{index}] ({entry.name}).key_env: "
                                         f"environment variable {entry.key_env} is not set")
                digest = hash_key(secret)
            else:
                digest = entry.key_sha256.lower()
            keys[digest] = ApiKey(entry.name, frozenset(entry.scopes))
        return cls(keys)

    @classmethod
    def from_env(cls) -> "KeyStore":
        value = os.environ.get(KEYS_FILE_ENV)
        if not value:
            raise KeyConfigError(f"{KEYS_FILE_ENV} is not set: name the YAML file of API keys "
                                 "(see docs/serving.md)")
        return cls.from_file(Path(value))

    def resolve(self, secret: str | None) -> ApiKey | None:
        if not secret:
            return None
        digest = hash_key(secret)
        for known, key in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return key
        return None
