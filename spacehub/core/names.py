"""Owner and space names, as the Hub accepts them, and the subdomain label of a space."""

import re

from spacehub.core.errors import Unprocessable

MAX_NAME_LENGTH = 96
MAX_LABEL_LENGTH = 63
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,96}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def validate_name(value: str, what: str = "name") -> str:
    """Return `value` if it is a valid owner or space name, else raise Unprocessable."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise Unprocessable(
            f"invalid {what} {value!r}: use 1 to {MAX_NAME_LENGTH} letters, digits, '-', '_' or '.'"
        )
    if value[0] in "-." or value[-1] in "-.":
        raise Unprocessable(f"invalid {what} {value!r}: must not start or end with '-' or '.'")
    if "--" in value or ".." in value:
        raise Unprocessable(f"invalid {what} {value!r}: must not contain '--' or '..'")
    if value.lower().endswith(".git"):
        raise Unprocessable(f"invalid {what} {value!r}: must not end with '.git'")
    return value


def subdomain_label(owner: str, name: str) -> str:
    """The DNS label of a space's app host: `owner-name`, lower-cased, `_` and `.` as `-`."""
    return f"{owner}-{name}".lower().replace("_", "-").replace(".", "-")


def validate_label(label: str) -> str:
    if len(label) > MAX_LABEL_LENGTH:
        raise Unprocessable(
            f"the app host label {label!r} is {len(label)} characters long; "
            f"DNS allows at most {MAX_LABEL_LENGTH}: choose a shorter owner or space name"
        )
    if not _LABEL.fullmatch(label):
        raise Unprocessable(f"the app host label {label!r} is not a valid DNS label")
    return label
