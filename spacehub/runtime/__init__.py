"""Runtimes by name, imported lazily so that `local` needs no Docker SDK installed."""

import importlib

from spacehub.runtime.base import Runtime

RUNTIMES = {
    "docker": "spacehub.runtime.docker:DockerRuntime",
    "local": "spacehub.runtime.local:LocalRuntime",
    "swarm": "spacehub.runtime.swarm:SwarmRuntime",
}


def load_runtime_class(name: str) -> type[Runtime]:
    try:
        module_name, class_name = RUNTIMES[name].split(":")
    except KeyError:
        raise ValueError(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIMES)}") from None
    return getattr(importlib.import_module(module_name), class_name)
