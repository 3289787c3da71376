"""Domain objects → the JSON shapes huggingface_hub parses."""

from spacehub.core.hardware import FLAVORS
from spacehub.platform.build_logs import hub_timestamp
from spacehub.platform.models import Space, User, utcnow
from spacehub.platform.services import desired
from spacehub.platform.services.builds import is_serving
from spacehub.platform.settings import Settings


def space_url(settings: Settings, owner: str, name: str) -> str:
    return f"{settings.effective_public_url}/spaces/{owner}/{name}"


def app_host(settings: Settings, owner: str, name: str, label: str) -> str:
    """The app URL a non-browser client can reach (gradio_client joins paths onto it)."""
    if settings.wildcard_dns:
        scheme, _, rest = settings.effective_public_url.partition("://")
        port = rest.split("/")[0].rpartition(":")[2] if ":" in rest.split("/")[0] else ""
        return f"{scheme}://{label}.{settings.apps_domain}{':' + port if port else ''}"
    return f"{settings.effective_apps_url}/apps/{owner}/{name}/"  # never the API's origin


def runtime_json(settings: Settings, space: Space) -> dict:
    serving = is_serving(space)
    sleep_seconds = desired.sleep_seconds(space, settings.default_sleep_time)
    answer: dict = {
        "stage": str(space.stage),
        "hardware": {"current": space.hardware if serving else None, "requested": space.hardware},
        "storage": space.storage,
        # The idle seconds before the app sleeps, the platform's default included (as the Hub).
        "gcTimeout": sleep_seconds if sleep_seconds > 0 else None,
        "replicas": {"current": 1 if serving else 0, "requested": 1},
        "devMode": False,
        "domains": [{"domain": f"{space.label}.{settings.apps_domain}", "stage": "READY"}],
        "sdk": space.sdk,
    }
    if space.error_message:
        answer["errorMessage"] = space.error_message
    since = desired.asleep_since(space)
    if since is not None:  # extras: huggingface_hub keeps them in SpaceRuntime.raw
        answer["sleepingSince"] = hub_timestamp(since)
        answer["sleptSeconds"] = max(0, int((utcnow() - since).total_seconds()))
    return answer


def space_json(
    settings: Settings, space: Space, owner: User, files: list[str] | None = None, full: bool = True
) -> dict:
    answer: dict = {
        "_id": str(space.id),
        "id": f"{owner.name}/{space.name}",
        "author": owner.name,
        "sha": space.head_commit,
        "lastModified": hub_timestamp(space.updated_at),
        "createdAt": hub_timestamp(space.created_at),
        "private": space.private,
        "gated": False,
        "disabled": False,
        "likes": 0,
        "tags": [space.sdk, *space.card_data.get("tags", [])],
        "sdk": space.sdk,
        "subdomain": space.label,
        "host": app_host(settings, owner.name, space.name, space.label),
    }
    if full:
        answer |= {
            "cardData": space.card_data,
            "runtime": runtime_json(settings, space),
            "models": [],
            "datasets": [],
            "usedStorage": 0,
        }
    if files is not None:
        answer["siblings"] = [{"rfilename": name} for name in files]
    return answer


def hardware_json() -> list[dict]:
    return [
        {
            "name": flavor.name,
            "prettyName": flavor.pretty_name,
            "cpu": f"{flavor.cpus:g} vCPU",
            "ram": f"{flavor.memory_bytes // 1024**3} GB",
            "accelerator": None,
            "unitCostMicroUSD": 0,
            "unitCostUSD": 0.0,
            "unitLabel": "hour",
        }
        for flavor in FLAVORS.values()
    ]
