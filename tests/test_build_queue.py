"""The build queue in the database, on SQLite and PostgreSQL: coalescing, claiming, requeueing."""

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from spacehub.core.stages import Stage
from spacehub.platform.db import session_scope
from spacehub.platform.models import Build, BuildStatus, BuildWorker, Space, User, utcnow
from spacehub.platform.services import accounts, builds, spaces
from tests.test_database import database_url, engine  # noqa: F401 (fixtures)

C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:  # noqa: F811
    with session_scope(engine) as opened:
        yield opened


@pytest.fixture
def owner(session: Session) -> User:
    return accounts.create_user(session, "alice")


def new_space(session: Session, owner: User, name: str = "demo") -> Space:
    return spaces.create_space(session, owner, name, sdk="static")


def builds_by_status(session: Session, space: Space) -> dict[str, list[str]]:
    answer: dict[str, list[str]] = {}
    for build in builds.builds_of(session, space):
        session.refresh(build)
        answer.setdefault(str(build.status), []).append(build.commit)
    return answer


def test_enqueue_coalesces_to_one_queued_build_of_the_newest_commit(
    session: Session, owner: User
) -> None:
    space = new_space(session, owner)
    first = builds.enqueue(session, space, C1)
    second = builds.enqueue(session, space, C2)
    third = builds.enqueue(session, space, C3)
    assert first is not None and second is not None and third is not None
    assert first.id == second.id == third.id
    assert builds_by_status(session, space) == {"queued": [C3]}
    assert space.stage == Stage.BUILDING


def test_enqueue_keeps_a_factory_rebuild_asked_for(session: Session, owner: User) -> None:
    space = new_space(session, owner)
    builds.enqueue(session, space, C1, no_cache=True)
    queued = builds.enqueue(session, space, C2)
    assert queued is not None and queued.no_cache is True


def test_enqueue_of_a_serving_space_is_running_building(session: Session, owner: User) -> None:
    space = new_space(session, owner)
    space.current_commit = C1
    spaces.set_stage(session, space, Stage.RUNNING)
    builds.enqueue(session, space, C2)
    assert space.stage == Stage.RUNNING_BUILDING


def test_enqueue_leaves_a_paused_space_paused(session: Session, owner: User) -> None:
    space = new_space(session, owner)
    spaces.set_stage(session, space, Stage.PAUSED)
    assert builds.enqueue(session, space, C1) is not None
    assert space.stage == Stage.PAUSED


def test_claim_gives_one_build_at_a_time_per_space(session: Session, owner: User) -> None:
    demo = new_space(session, owner, "demo")
    other = new_space(session, owner, "other")
    builds.enqueue(session, demo, C1)

    claimed = builds.claim(session, "worker-a")
    assert claimed is not None and claimed.commit == C1
    assert claimed.status == BuildStatus.RUNNING
    assert claimed.claimed_by == "worker-a" and claimed.started_at is not None
    assert builds.claim(session, "worker-b") is None

    builds.enqueue(session, demo, C2)
    assert builds.claim(session, "worker-b") is None, "a second build of a busy space started"
    builds.enqueue(session, other, C3)
    other_build = builds.claim(session, "worker-b")
    assert other_build is not None and other_build.space_id == other.id

    builds.finish(session, claimed)
    next_build = builds.claim(session, "worker-a")
    assert next_build is not None and next_build.commit == C2
    assert builds.claim(session, "worker-c") is None


def test_claim_takes_the_oldest_queued_build_first(session: Session, owner: User) -> None:
    names = [f"space-{index}" for index in range(4)]
    for name in names:
        builds.enqueue(session, new_space(session, owner, name), C1)
    order = []
    while (build := builds.claim(session, "worker")) is not None:
        order.append(session.get(Space, build.space_id).name)
    assert order == names


def test_finish_records_success_or_the_error(session: Session, owner: User) -> None:
    space = new_space(session, owner)
    builds.enqueue(session, space, C1)
    builds.finish(session, builds.claim(session, "w"), error=None)
    builds.enqueue(session, space, C2)
    builds.finish(session, builds.claim(session, "w"), error="pip failed")
    first, second = builds.builds_of(session, space)
    assert (first.status, first.error) == (BuildStatus.SUCCEEDED, None)
    assert (second.status, second.error) == (BuildStatus.FAILED, "pip failed")
    assert first.finished_at is not None and second.finished_at is not None
    assert builds.latest_build(session, space).id == second.id


def test_push_during_build_builds_newest_commit(session: Session, owner: User) -> None:
    space = new_space(session, owner)
    builds.enqueue(session, space, C1)
    running = builds.claim(session, "worker")
    assert running is not None and running.commit == C1

    # Two pushes arrive while C1 builds: one next build, of the newest commit.
    builds.enqueue(session, space, C2)
    builds.enqueue(session, space, C3)
    assert builds_by_status(session, space) == {"running": [C1], "queued": [C3]}
    assert builds.claim(session, "worker") is None

    builds.finish(session, running)
    following = builds.claim(session, "worker")
    assert following is not None and following.commit == C3
    builds.finish(session, following)
    assert builds_by_status(session, space) == {"succeeded": [C1, C3]}
    assert builds.claim(session, "worker") is None


def test_a_push_of_the_commit_being_built_queues_nothing(session: Session, owner: User) -> None:
    space = new_space(session, owner)
    builds.enqueue(session, space, C1)
    builds.claim(session, "worker")
    assert builds.enqueue(session, space, C1) is None
    assert builds_by_status(session, space) == {"running": [C1]}
    # A factory rebuild of that commit is a new build.
    assert builds.enqueue(session, space, C1, no_cache=True) is not None
    assert builds_by_status(session, space) == {"running": [C1], "queued": [C1]}


def test_concurrent_claims_never_get_the_same_build(engine: Engine) -> None:  # noqa: F811
    with session_scope(engine) as session:
        owner = accounts.create_user(session, "alice")
        for index in range(12):
            builds.enqueue(session, new_space(session, owner, f"space-{index}"), C1)

    workers = 4
    start = threading.Barrier(workers)
    claimed: list[list[int]] = [[] for _ in range(workers)]
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with Session(engine, expire_on_commit=False) as own_session:
                start.wait()
                while (build := builds.claim(own_session, f"worker-{index}")) is not None:
                    claimed[index].append(build.id)
        except BaseException as error:  # reported below, from the test's thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    every = [build_id for ids in claimed for build_id in ids]
    assert len(every) == len(set(every)) == 12
    with session_scope(engine) as session:
        rows = session.exec(select(Build)).all()
        assert {row.status for row in rows} == {BuildStatus.RUNNING}
        owners = {row.id: row.claimed_by for row in rows}
    for index, ids in enumerate(claimed):
        assert all(owners[build_id] == f"worker-{index}" for build_id in ids)


def test_two_workers_racing_for_one_build_one_gets_it(engine: Engine) -> None:  # noqa: F811
    with session_scope(engine) as session:
        space = new_space(session, accounts.create_user(session, "alice"))
    for round_number in range(5):
        with session_scope(engine) as session:
            space = session.get(Space, space.id)
            builds.enqueue(session, space, f"{round_number}".rjust(40, "a"))
        start = threading.Barrier(2)
        results: list[Build | None] = []

        threads = [
            threading.Thread(target=race, args=(engine, f"w{n}", start, results)) for n in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        winners = [build for build in results if build is not None]
        assert len(results) == 2 and len(winners) == 1, results
        with session_scope(engine) as session:
            builds.finish(session, session.get(Build, winners[0].id))


def race(
    engine: Engine,  # noqa: F811
    name: str,
    start: threading.Barrier,
    results: list[Build | None],
) -> None:
    with Session(engine, expire_on_commit=False) as own_session:
        start.wait()
        results.append(builds.claim(own_session, name))


def test_requeue_interrupted_requeues_a_running_build(session: Session, owner: User) -> None:
    space = new_space(session, owner)
    builds.enqueue(session, space, C1)
    builds.claim(session, "host:1:0")
    assert builds.requeue_interrupted(session) == 1
    (build,) = builds.builds_of(session, space)
    session.refresh(build)
    assert build.status == BuildStatus.QUEUED
    assert build.claimed_by is None and build.started_at is None
    again = builds.claim(session, "host:2:0")
    assert again is not None and again.id == build.id


def test_requeue_interrupted_fails_a_build_a_newer_one_replaces(
    session: Session, owner: User
) -> None:
    space = new_space(session, owner)
    builds.enqueue(session, space, C1)
    builds.claim(session, "host:1:0")
    builds.enqueue(session, space, C2)
    assert builds.requeue_interrupted(session) == 1
    first, second = builds.builds_of(session, space)
    session.refresh(first)
    assert first.status == BuildStatus.FAILED
    assert builds.INTERRUPTED in first.error and "newer" in first.error
    assert first.finished_at is not None
    assert second.status == BuildStatus.QUEUED and second.commit == C2
    assert builds.claim(session, "host:2:0").commit == C2


def test_requeue_interrupted_only_touches_the_workers_named(session: Session, owner: User) -> None:
    mine = new_space(session, owner, "mine")
    theirs = new_space(session, owner, "theirs")
    builds.enqueue(session, mine, C1)
    builds.claim(session, "host-a:1:0")
    builds.enqueue(session, theirs, C1)
    builds.claim(session, "host-b:1:0")
    assert builds.requeue_interrupted(session, worker_prefix="host-a:") == 1
    assert builds_by_status(session, mine) == {"queued": [C1]}
    assert builds_by_status(session, theirs) == {"running": [C1]}
    assert builds.requeue_interrupted(session) == 1
    assert builds.requeue_interrupted(session) == 0


def test_a_live_workers_build_stays_and_a_lapsed_workers_build_is_handed_back(
    session: Session, owner: User
) -> None:
    alive = new_space(session, owner, "alive")
    lapsed = new_space(session, owner, "lapsed")
    builds.enqueue(session, alive, C1)
    builds.claim(session, "machine-a:10:0")
    builds.enqueue(session, lapsed, C1)
    builds.claim(session, "machine-b:20:0")
    builds.beat(session, "machine-a:10")
    builds.beat(session, "machine-b:20")
    lapse = timedelta(seconds=30)
    assert builds.hand_back_abandoned(session, lapse) == 0  # both beat just now
    stale = session.get(BuildWorker, "machine-b:20")
    stale.heartbeat_at = utcnow() - timedelta(seconds=31)
    session.add(stale)
    session.commit()
    assert builds.hand_back_abandoned(session, lapse) == 1
    assert builds_by_status(session, alive) == {"running": [C1]}
    assert builds_by_status(session, lapsed) == {"queued": [C1]}
    assert session.get(BuildWorker, "machine-b:20") is None  # a lapsed worker is forgotten
    assert builds.claim(session, "machine-a:10:1").space_id == lapsed.id
    assert builds.hand_back_abandoned(session, lapse) == 0


def test_a_build_whose_worker_never_beat_or_is_gone_is_handed_back(
    session: Session, owner: User
) -> None:
    silent = new_space(session, owner, "silent")
    gone = new_space(session, owner, "gone")
    builds.enqueue(session, silent, C1)
    builds.claim(session, "machine-a:10:0")  # no heartbeat at all: a worker from before them
    builds.enqueue(session, gone, C1)
    builds.claim(session, "machine-c:30:0")
    builds.beat(session, "machine-c:30")
    lapse = timedelta(seconds=30)
    assert builds.hand_back_abandoned(session, lapse, lambda worker: worker == "machine-c:30") == 2
    assert builds_by_status(session, silent) == {"queued": [C1]}
    assert builds_by_status(session, gone) == {"queued": [C1]}


def test_a_worker_knows_when_its_build_was_handed_back(session: Session, owner: User) -> None:
    space = new_space(session, owner)
    builds.enqueue(session, space, C1)
    build = builds.claim(session, "machine-a:10:0")
    assert builds.still_claimed(session, build.id, "machine-a:10:0")
    assert builds.hand_back_abandoned(session, timedelta(seconds=30)) == 1
    assert not builds.still_claimed(session, build.id, "machine-a:10:0")
    builds.claim(session, "machine-b:20:0")
    assert not builds.still_claimed(session, build.id, "machine-a:10:0")


def test_concurrent_enqueues_leave_one_queued_build(
    engine: Engine,  # noqa: F811
    session: Session,
    owner: User,
) -> None:
    space = new_space(session, owner)
    for round_number in range(10):
        barrier = threading.Barrier(2)
        errors: list[Exception] = []

        def push(commit: str, barrier: threading.Barrier = barrier, errors: list = errors) -> None:
            try:
                with session_scope(engine) as own:
                    mine = own.get(Space, space.id)
                    barrier.wait()
                    builds.enqueue(own, mine, commit)
            except Exception as error:
                errors.append(error)

        threads = [threading.Thread(target=push, args=(commit,)) for commit in (C1, C2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"round {round_number}: {errors}"
        queued = session.exec(
            select(Build).where(Build.space_id == space.id, Build.status == BuildStatus.QUEUED)
        ).all()
        assert len(queued) == 1, f"round {round_number}: {[build.commit for build in queued]}"
