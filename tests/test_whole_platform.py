"""Beyond one machine, all of it at once: `serve` on PostgreSQL with the swarm runtime and a
loopback registry, nginx in front with TLS, two `spacehub worker` processes building. A signed
GitHub-style push webhook deploys a commit of a followed repository; the worker that takes its
build is killed mid-build, the other finishes it, and the app answers through nginx over TLS
in both URL forms, run by a Swarm service from the registry.

The pieces have tests of their own (test_swarm, test_build_workers, test_nginx_front,
test_external_source); this one shows they work together.
"""

import signal
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import git, make_checkout, wait_for
from tests.swarm_cluster import Swarm
from tests.test_build_workers import build_queue, claimed_by
from tests.test_database import database_url  # noqa: F401 (fixture)
from tests.test_docker_spaces import tiny_docker_app
from tests.test_external_source import deliver, follow, github_payload
from tests.test_nginx_front import make_wildcard_certificate
from tests.test_swarm import start_worker, stop_worker, swarm_serve, swarm_services

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

SLOW_STEP_SECONDS = 12  # long enough to see which worker took the build and kill it


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_signed_push_is_built_by_the_surviving_worker_and_served_by_swarm_behind_tls(
    swarm: Swarm,
    tmp_path: Path,
    database_url: str,  # noqa: F811
    app_hosts_resolve: None,
) -> None:
    ca, tls = make_wildcard_certificate(tmp_path)
    workers: list[subprocess.Popen] = []
    with swarm_serve(
        swarm,
        tmp_path / "data",
        ca=ca,
        proxy="nginx",
        tls_cert=str(tls.cert),
        tls_key=str(tls.key),
        apps_domain="spaces.localhost",
        database_url=database_url,
        build_workers="0",
        worker_heartbeat="0.5",
        worker_lapse="3",
    ) as platform:
        try:
            workers = [
                start_worker(platform, swarm.registry, tmp_path / f"worker {n}.log") for n in (1, 2)
            ]
            # "GitHub": a bare repository with the app, its build slow and new on every run.
            bare = tmp_path / "app.git"
            git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
            slow_step = f"RUN echo {uuid.uuid4().hex} && sleep {SLOW_STEP_SECONDS}"
            work = make_checkout(
                tmp_path / "work", tiny_docker_app("Followed app", run=slow_step), bare.as_uri()
            )
            git("push", "--quiet", str(bare), "main", cwd=work)
            commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()

            space_id = platform.create_space("followed", sdk="docker")
            secret = follow(platform, space_id, bare.as_uri())["webhook"]["secret"]
            answer = deliver(
                platform, space_id, secret, github_payload(bare.as_uri(), "0" * 40, commit)
            )
            assert (answer.status_code, answer.json()["result"]) == (200, "deployed"), answer.text

            taker = wait_for(lambda: claimed_by(platform, space_id), 60, "a worker to claim it")
            (killed,) = [w for w in workers if f":{w.pid}:" in taker]
            (survivor,) = [w for w in workers if w is not killed]
            killed.send_signal(signal.SIGKILL)
            killed.wait(10)
            wait_for(
                lambda: f":{survivor.pid}:" in (claimed_by(platform, space_id) or ""),
                30,
                "the other worker to take the build over",
            )
            runtime = platform.wait_stage(space_id, {"RUNNING", "BUILD_ERROR"}, 240)
            assert runtime["stage"] == "RUNNING", runtime
            assert build_queue(platform)["builds"] == []

            (service,) = swarm_services(platform, space_id)
            image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
            assert image.startswith(f"{swarm.registry}/") and "@sha256:" in image, image

            subdomain = f"https://admin-followed.spaces.localhost:{platform.apps_port}/"
            path_form = f"{platform.apps_url}/apps/{space_id}/"
            with httpx.Client(verify=platform.verify, timeout=10) as client:
                for url in (path_form, subdomain):
                    page = wait_for(
                        lambda u=url: (r := client.get(u)).status_code == 200 and r,
                        60,
                        f"{url} to answer through nginx",
                    )
                    assert page.json()["env"]["SPACE_ID"] == space_id, page.text
                    assert page.headers["server"] == "nginx", page.headers
                    assert page.url.scheme == "https"
        finally:
            for worker in workers:
                if worker.poll() is None:
                    stop_worker(worker)
