"""Release images in the registry (SPACEHUB_REGISTRY): deleting the tags a platform no longer keeps.

Builds push them (image.py); the registry's own HTTP API (distribution v2) takes them out. A tag
is deleted through its manifest's digest, which deletes every tag on that manifest, so a digest
that a kept tag names too is left alone. The layers stay on the registry's disk until its
garbage collection (`registry garbage-collect`), as with any registry.

Anonymous registries only: one that wants credentials (401) or does not allow deleting (405,
`storage.delete.enabled` off) keeps its images, and the log says so. Failures never stop what
asked for the deletion (a space's deletion, pruning): they are the caller's to log.
"""

import ipaddress
import json
import urllib.error
import urllib.request
from email.message import Message
from urllib.parse import quote

from spacehub.core.release import REGISTRY

# The manifests docker push writes (Docker 20.10: v2 schema 2; BuildKit/26: OCI, with an index).
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
TIMEOUT_SECONDS = 10


class RegistryError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def delete_tags(registry: str, repository: str, keep: set[str]) -> list[str]:
    """Delete the tags of `repository` in `registry` (host[:port][/path]) that are not in
    `keep`; the tags deleted. RegistryError when the registry refuses or does not answer."""
    if not REGISTRY.fullmatch(registry):
        raise RegistryError(f"{registry!r} is not a registry")
    host, _, path = registry.partition("/")
    name = f"{path}/{repository}" if path else repository
    base = f"{_scheme(host)}://{host}/v2/{quote(name)}"
    listed = _call("GET", f"{base}/tags/list", registry)
    tags = (json.loads(listed[0]).get("tags") or []) if listed else []  # a 404: none pushed
    digests = {}
    for tag in tags:
        found = _call("HEAD", f"{base}/manifests/{quote(tag)}", registry)
        digests[tag] = found[1].get("Docker-Content-Digest") if found else None
    kept = {digests[tag] for tag in keep if digests.get(tag)}
    deleted: list[str] = []
    gone: set[str] = set()  # digests deleted: their other tags went with them
    for tag, digest in sorted(digests.items()):
        if tag in keep or not digest or digest in kept:
            continue
        if digest not in gone:
            _call("DELETE", f"{base}/manifests/{digest}", registry)
            gone.add(digest)
        deleted.append(tag)
    return deleted


def _call(method: str, url: str, registry: str) -> tuple[bytes, Message] | None:
    """The answer's body and headers; None for a 404 (nothing there, or deleted meanwhile)."""
    # The URL is built from a registry that matched REGISTRY, with an http(s) scheme of ours.
    request = urllib.request.Request(url, method=method, headers={"Accept": MANIFEST_TYPES})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
            return answer.read(), answer.headers
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise _refused(registry, error) from None
    except OSError as error:
        raise RegistryError(f"the registry {registry} did not answer: {error}") from None


def _refused(registry: str, error: urllib.error.HTTPError) -> RegistryError:
    reasons = {
        401: "it asks for credentials, which spacehub does not send to delete",
        405: "it does not allow deleting (storage.delete.enabled in its configuration)",
    }
    reason = reasons.get(error.code, f"it answered {error.code} {error.reason}")
    return RegistryError(f"the registry {registry} keeps the images: {reason}")


def _scheme(host: str) -> str:
    """Plain HTTP for a registry on loopback, which Docker pushes to without TLS as well."""
    hostname = host.partition(":")[0]  # REGISTRY has no IPv6 address: the colon is the port's
    if hostname == "localhost":
        return "http"
    try:
        return "http" if ipaddress.ip_address(hostname).is_loopback else "https"
    except ValueError:
        return "https"
