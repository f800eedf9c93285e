"""API keys and what each may do, failing closed.

Keys come from ``RAG_API_KEYS`` (comma-separated; each has full access) and from
``RAG_API_KEYS_FILE``, a TOML file of named keys::

    [keys.ops]
    key = "k-ops"              # or key_sha256 = "<hex sha256 of the key>"
    admin = true               # every KB; create and delete KBs
    [keys.team-a]
    key_sha256 = "…"
    read = ["a"]
    write = ["a"]              # upload and delete documents in a (and read it)
    [keys.auditor]
    key = "k-aud"
    read = ["a", "b"]

With neither set, no key is needed (every caller is an admin, as before keys existed). Else a
request without a known key is a 401. A key is compared by its SHA-256 digest, against every
known digest in constant time, and is never kept or logged as given: the request carries the
key's *name* (``request.state.key_name``: logs, metrics, rate limits). The routes ask
``Principal`` what it may do: a KB it may not read is the same 404 as one that does not exist.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from api.errors import APIError
from rag.config import Settings
from rag.kbs import KB_NAME, NAME_RULE, no_such_kb

_HEX64 = r"^[0-9a-fA-F]{64}$"


@dataclass(frozen=True)
class Principal:
    """Who is asking: a key's name and the KBs it may read and write (admins: all)."""

    name: str
    admin: bool = False
    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()

    def may_read(self, kb: str) -> bool:
        return self.admin or kb in self.read or kb in self.write

    def may_write(self, kb: str) -> bool:
        return self.admin or kb in self.write

    def check_read_all(self, kbs: list[str]) -> None:
        for kb in kbs:
            self.check_read(kb)

    def check_read(self, kb: str) -> None:
        """A KB this key may not read: the 404 of a KB that does not exist (no existence leak)."""
        if not self.may_read(kb):
            raise no_such_kb(kb)

    def check_write(self, kb: str) -> None:
        self.check_read(kb)
        if not self.may_write(kb):
            raise APIError(
                403, f"key '{self.name}' may read knowledge base '{kb}' but not change it"
            )

    def check_admin(self) -> None:
        if not self.admin:
            raise APIError(403, f"key '{self.name}' may not create or delete knowledge bases")


OPEN = Principal("anonymous", admin=True)


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(None, min_length=1)
    key_sha256: str | None = Field(None, pattern=_HEX64)
    admin: bool = False
    read: list[str] = Field(default_factory=list)
    write: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_key(self) -> _KeyEntry:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of key and key_sha256")
        for kb in (*self.read, *self.write):
            if not KB_NAME.fullmatch(kb):
                raise ValueError(f"'{kb}' is not a knowledge base name ({NAME_RULE})")
        return self

    def digest(self) -> bytes:
        if self.key_sha256 is not None:
            return bytes.fromhex(self.key_sha256)
        return _sha256(self.key or "")


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: dict[str, _KeyEntry] = Field(default_factory=dict)


def _sha256(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeysFileError(ValueError):
    """The keys file cannot be read or breaks the format (the server does not start)."""


class KeyRing:
    """The known keys, by digest, and whom each stands for."""

    def __init__(self, entries: list[tuple[bytes, Principal]]) -> None:
        self._entries = entries

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        entries = [
            (_sha256(k), Principal(f"key-{i}", admin=True))
            for i, k in enumerate(settings.api_key_list, start=1)
        ]
        if settings.api_keys_file is not None:
            entries += _read_keys_file(settings.api_keys_file)
        digests = [d for d, _ in entries]
        if len(set(digests)) != len(digests):
            raise KeysFileError("the same key is given twice (RAG_API_KEYS, RAG_API_KEYS_FILE)")
        return cls(entries)

    @property
    def open(self) -> bool:
        """No key configured: no key needed."""
        return not self._entries

    def find(self, token: str) -> Principal | None:
        """The principal of a presented key; every known digest is compared (constant time)."""
        digest = _sha256(token)
        found = None
        for known, principal in self._entries:
            if hmac.compare_digest(digest, known):
                found = principal
        return found


def _read_keys_file(path: Path) -> list[tuple[bytes, Principal]]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        parsed = _KeysFile.model_validate(raw)
    except OSError as exc:
        raise KeysFileError(f"RAG_API_KEYS_FILE {path}: cannot be read: {exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"RAG_API_KEYS_FILE {path}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise KeysFileError(f"RAG_API_KEYS_FILE {path}: {problems}") from exc
    return [
        (e.digest(), Principal(name, e.admin, frozenset(e.read), frozenset(e.write)))
        for name, e in parsed.keys.items()
    ]


def authenticate(request: Request) -> Principal:
    """Dependency of every keyed route: the caller, or a 401. The key's name goes on the request
    (``request.state.key_name``) for the access log, the metrics and the rate limit."""
    ring: KeyRing = request.app.state.keys
    if ring.open:
        principal = OPEN
    else:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = ring.find(token) if scheme.lower() == "bearer" and token else None
        if found is None:
            raise APIError(401, "missing or invalid API key (Authorization: Bearer <key>)")
        principal = found
    request.state.key_name = principal.name
    return principal


Caller = Annotated[Principal, Depends(authenticate)]
