"""Bounded request fields shared by the API's bodies and queries: a range or a length for each.

Numbers that reach the database stay well inside 64 bits; strings that are stored have a length
limit and no NUL characters (PostgreSQL refuses them in text).
"""

from typing import Annotated

from pydantic import AfterValidator, Field

# One sleep time: -1 (never) or up to 30 days of idle time before an app is put to sleep.
MAX_SLEEP_SECONDS = 30 * 24 * 3600
# A secret or variable value: a key file or a small JSON config fits, a model does not.
MAX_VALUE_CHARS = 64 * 1024
MAX_KEY_CHARS = 100
MAX_DESCRIPTION_CHARS = 1000
# Names and search words in queries; owner and space names themselves are shorter (core.names).
MAX_QUERY_CHARS = 256
MAX_PAGE = 1_000_000
MAX_ROW_ID = 2**63 - 1  # a database id in a path: SQLite and PostgreSQL integers are 64-bit


def _without_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


SleepSeconds = Annotated[int, Field(ge=-1, le=MAX_SLEEP_SECONDS)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY_CHARS)]
Value = Annotated[str, Field(max_length=MAX_VALUE_CHARS), AfterValidator(_without_nul)]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION_CHARS), AfterValidator(_without_nul)]
