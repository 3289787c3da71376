"""The platform's error hierarchy; the web layer maps each class to one HTTP status."""


class SpacehubError(Exception):
    """Base class; `message` is safe to show to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(SpacehubError):
    """The request is malformed (400)."""


class Unauthorized(SpacehubError):
    """No token, or a token that is not valid (401)."""


class Forbidden(SpacehubError):
    """The caller is known but may not do this (403)."""


class NotFound(SpacehubError):
    """The thing does not exist or is not visible to the caller (404)."""

    code = "RepoNotFound"


class RepoNotFound(NotFound):
    code = "RepoNotFound"


class RevisionNotFound(NotFound):
    """No branch, tag or commit of that name in the space's repository."""

    code = "RevisionNotFound"


class EntryNotFound(NotFound):
    """No file or folder at that path in the revision."""

    code = "EntryNotFound"


class Conflict(SpacehubError):
    """The request collides with existing state (409)."""


class PreconditionFailed(SpacehubError):
    """The caller's view is stale: e.g. the branch moved past the parent commit it named (412)."""


class TooLarge(SpacehubError):
    """A body or a push is over the configured limit (413)."""


class Unprocessable(SpacehubError):
    """Well-formed input that breaks a rule (422)."""


class UpstreamFailed(SpacehubError):
    """A service the platform relies on for this request failed: e.g. a git host (502)."""


class InvalidConfig(SpacehubError):
    """README.md front matter that cannot be used; `line` is 1-based within README.md."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


class NoAppFile(SpacehubError):
    """The app file the configuration names is not in the commit."""
