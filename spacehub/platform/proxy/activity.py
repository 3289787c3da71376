"""Activity per space for sleep-on-idle: requests in flight and open WebSockets count as open."""

import time

from spacehub.platform.route_table import Activity, RouteTable


def open_activity(routes: RouteTable, space_id: str) -> Activity:
    # While a connection is open the space is busy whatever `last_request` says, so the time is
    # only taken on closing; `touch` creates the record the first time.
    activity = routes.activity.get(space_id) or routes.touch(space_id)
    activity.open_connections += 1
    return activity


def close_activity(activity: Activity) -> None:
    # Set on the object, not through the table: the space may have been removed meanwhile.
    activity.open_connections -= 1
    activity.last_request = time.monotonic()
