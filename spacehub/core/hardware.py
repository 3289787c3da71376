"""Hardware flavors (the Hub's names) and the limits an instance of each gets."""

from dataclasses import dataclass

from spacehub.core.errors import Unprocessable

GIB = 1024**3


@dataclass(frozen=True)
class Flavor:
    name: str
    pretty_name: str
    cpus: float
    memory_bytes: int
    pids: int = 1024


FLAVORS: dict[str, Flavor] = {
    f.name: f
    for f in (
        Flavor("cpu-basic", "CPU Basic", 2, 16 * GIB),
        Flavor("cpu-upgrade", "CPU Upgrade", 8, 32 * GIB, pids=4096),
    )
}
DEFAULT_FLAVOR = "cpu-basic"


def flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise Unprocessable(
            f"unknown hardware flavor {name!r}: this platform offers {', '.join(FLAVORS)}"
        ) from None
