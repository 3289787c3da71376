"""Tokens, passwords and secret values: hashing and encryption in one place."""

import hashlib
import hmac
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet

TOKEN_PREFIX = "hf_"
_passwords = PasswordHasher()


def new_token() -> str:
    """A fresh access token in the Hub's format (`hf_` + 34 letters and digits)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return TOKEN_PREFIX + "".join(secrets.choice(alphabet) for _ in range(34))


def hash_token(token: str) -> str:
    # Tokens carry ~200 bits of entropy: a fast hash is enough and keeps lookups indexable.
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _passwords.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def load_or_create_key(path: Path, make: bytes) -> bytes:
    """Read a key file, or write `make` to it with mode 0600 on first use."""
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(make)
    return make


class SecretBox:
    """Encrypts secret values at rest."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._fernet = Fernet(key)

    def derived_key(self, purpose: str) -> bytes:
        """A key of its own for `purpose`, from the box's key (which it does not reveal)."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    @staticmethod
    def new_key() -> bytes:
        return Fernet.generate_key()

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()
