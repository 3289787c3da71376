"""A space's stages, with the Hub's names."""

from enum import StrEnum


class Stage(StrEnum):
    NO_APP_FILE = "NO_APP_FILE"
    CONFIG_ERROR = "CONFIG_ERROR"
    BUILDING = "BUILDING"
    BUILD_ERROR = "BUILD_ERROR"
    APP_STARTING = "APP_STARTING"
    RUNNING = "RUNNING"
    RUNNING_BUILDING = "RUNNING_BUILDING"
    RUNNING_APP_STARTING = "RUNNING_APP_STARTING"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    SLEEPING = "SLEEPING"
    DELETING = "DELETING"


def building_stage(serving: bool) -> Stage:
    return Stage.RUNNING_BUILDING if serving else Stage.BUILDING


def starting_stage(serving: bool) -> Stage:
    return Stage.RUNNING_APP_STARTING if serving else Stage.APP_STARTING
