"""DockerRuntime against the real engine, and its spec function without one."""

import io
import re
import secrets
import time
from collections.abc import Iterator

import anyio
import docker
import docker.errors
import httpx
import pytest

from spacehub.core.errors import NotFound
from spacehub.core.release import AppSpec, Artifact, Limits
from spacehub.runtime.base import Instance, InstanceState, InstanceStatus
from spacehub.runtime.docker import DockerRuntime, container_name, container_spec, split_lines

BASE_IMAGE = "python:3.11-slim"
MIB = 1024**2
LIMITS = Limits(cpus=0.5, memory_bytes=256 * MIB, pids=128)
# A test run's own label prefix and network: cleanup by label cannot touch anything else.
PREFIX = f"spacehubtest-{secrets.token_hex(3)}"
TEST_LABEL = f"{PREFIX}.test"
COMMANDS = {
    "http": '["python3", "-m", "http.server", "7860"]',
    "crash": (
        '["python3", "-c", "import sys; print(\'booting\', flush=True); '
        "print('fatal: no model file', file=sys.stderr, flush=True); sys.exit(3)\"]"
    ),
    # bytes objects are written to, so the pages are really used (bytearray's are not).
    "hog": (
        '["python3", "-c", "print(\'allocating\', flush=True)\\nx = []\\n'
        "while True: x.append(b'x' * (8 << 20))\"]"
    ),
}


def make_spec(
    image: str,
    space_id: str = "alice/demo",
    commit: str = "0123456789abcdef0123456789abcdef01234567",
    limits: Limits = LIMITS,
    persistent_storage: bool = False,
) -> AppSpec:
    return AppSpec(
        space_id=space_id,
        commit=commit,
        artifact=Artifact(kind="image", ref=image, commit=commit),
        port=7860,
        limits=limits,
        env={"SPACE_ID": space_id, "SYSTEM": "spaces"},
        persistent_storage=persistent_storage,
    )


def test_container_spec_sets_limits_and_security_options() -> None:
    kwargs = container_spec(make_spec("img:1"), "net", "spacehub")

    assert kwargs["nano_cpus"] == 500_000_000
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 256 * MIB
    assert kwargs["pids_limit"] == 128
    assert kwargs["security_opt"] == ["no-new-privileges"]
    assert kwargs["cap_drop"] == ["ALL"]
    assert kwargs["restart_policy"] == {"Name": "no"}
    assert kwargs["init"] is True
    assert "privileged" not in kwargs


def test_container_spec_labels_env_and_loopback_port() -> None:
    kwargs = container_spec(make_spec("img:1", space_id="bob/my.app_2"), "net", "spacehub")

    assert kwargs["image"] == "img:1"
    assert kwargs["network"] == "net"
    assert kwargs["labels"] == {
        "spacehub.space": "bob/my.app_2",
        "spacehub.commit": "0123456789abcdef0123456789abcdef01234567",
        "spacehub.port": "7860",
    }
    assert kwargs["environment"] == {"SPACE_ID": "bob/my.app_2", "SYSTEM": "spaces"}
    assert kwargs["ports"] == {"7860/tcp": ("127.0.0.1", None)}
    assert "volumes" not in kwargs


def test_container_spec_mounts_data_volume_for_persistent_storage() -> None:
    kwargs = container_spec(make_spec("img:1", persistent_storage=True), "net", "sh")

    assert kwargs["volumes"] == {"sh-alice-demo-data": {"bind": "/data", "mode": "rw"}}
    assert not any("docker.sock" in source for source in kwargs["volumes"])


def test_container_spec_refuses_static_release() -> None:
    spec = make_spec("img:1")
    static = AppSpec(**{**spec.__dict__, "artifact": Artifact("static", "/srv/x", spec.commit)})

    with pytest.raises(ValueError, match="static"):
        container_spec(static, "net")


def test_container_names_are_valid_and_unique_per_deploy() -> None:
    spec = make_spec("img:1", space_id="Bob_X/my.App_2")

    names = {container_name(spec) for _ in range(20)}

    assert len(names) > 1
    for name in names:
        assert re.fullmatch(r"spacehub-bob-x-my-app-2-01234567-[0-9a-f]{4}", name)


def test_split_lines_joins_chunks_and_replaces_bad_bytes() -> None:
    chunks = [b"fir", b"st\r\nsec", b"ond \xff\n\xc3", b"\xa9 last"]

    assert list(split_lines(chunks)) == ["first", "second \ufffd", "\u00e9 last"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # what the platform runs on


@pytest.fixture(scope="session")
def docker_client(docker_engine: docker.DockerClient) -> Iterator[docker.DockerClient]:
    yield docker_engine
    remove_test_objects(docker_engine)


def remove_test_objects(client: docker.DockerClient) -> None:
    """Remove by label everything this run created, whatever the tests left behind."""
    for container in client.containers.list(all=True, filters={"label": f"{PREFIX}.space"}):
        container.remove(v=True, force=True)
    for image in client.images.list(filters={"label": TEST_LABEL}):
        client.images.remove(image.id, force=True)
    for volume in client.volumes.list(filters={"label": f"{PREFIX}.space"}):
        volume.remove(force=True)
    for network in client.networks.list(names=[PREFIX]):
        network.remove()


@pytest.fixture(scope="session")
def images(docker_client: docker.DockerClient) -> dict[str, str]:
    """Small app images built from the local base image: one per behaviour in COMMANDS."""
    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"base image {BASE_IMAGE} is missing: run `spacehub base-image` first")
    tags = {}
    for kind, command in COMMANDS.items():
        tags[kind] = build_image(docker_client, f"FROM {BASE_IMAGE}\nCMD {command}\n", kind)
    return tags


def build_image(
    client: docker.DockerClient, dockerfile: str, kind: str, labels: dict[str, str] | None = None
) -> str:
    tag = f"{PREFIX}-{kind}:test"
    client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()),
        tag=tag,
        labels={TEST_LABEL: "1", **(labels or {})},
        rm=True,
        forcerm=True,
    )
    return tag


@pytest.fixture(scope="session")
def runtime(docker_client: docker.DockerClient) -> DockerRuntime:
    return DockerRuntime(network=PREFIX, label_prefix=PREFIX)


def unique_space() -> str:
    return f"tester/app-{secrets.token_hex(3)}"


async def wait_for_http(client: docker.DockerClient, instance: Instance) -> httpx.Response:
    """The app's first HTTP answer of any status; on timeout, fail with the container's logs."""
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                return await http.get(f"http://{instance.host}:{instance.port}/")
            except httpx.TransportError:
                await anyio.sleep(0.1)
    logs = client.containers.get(instance.state["container_id"]).logs().decode(errors="replace")
    pytest.fail(f"{instance} did not answer HTTP within 20 s; its logs:\n{logs}")


async def wait_for_exit(runtime: DockerRuntime, instance: Instance) -> InstanceStatus:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = await runtime.status(instance)
        if status.state is not InstanceState.RUNNING:
            return status
        await anyio.sleep(0.1)
    pytest.fail(f"{instance} still runs after 20 s")


@pytest.mark.docker
@pytest.mark.anyio
async def test_deployed_app_answers_on_loopback_with_limits_and_no_privileges(
    runtime: DockerRuntime, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    instance = await runtime.deploy(make_spec(images["http"], space_id=unique_space()))

    assert instance.host == "127.0.0.1"
    assert (await wait_for_http(docker_client, instance)).status_code == 200
    assert (await runtime.status(instance)).state is InstanceState.RUNNING
    attrs = docker_client.containers.get(instance.state["container_id"]).attrs
    host_config = attrs["HostConfig"]
    assert host_config["CapDrop"] == ["ALL"]
    assert host_config["SecurityOpt"] == ["no-new-privileges"]
    assert host_config["Memory"] == host_config["MemorySwap"] == 256 * MIB
    assert host_config["PidsLimit"] == 128
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["RestartPolicy"]["Name"] in ("no", "")
    assert not host_config["Privileged"]
    assert host_config["Init"] is True
    assert not any("docker.sock" in m["Source"] for m in attrs["Mounts"])
    assert host_config["PortBindings"] == {"7860/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert attrs["NetworkSettings"]["Ports"]["7860/tcp"] == [
        {"HostIp": "127.0.0.1", "HostPort": str(instance.port)}
    ]
    assert list(attrs["NetworkSettings"]["Networks"]) == [PREFIX]

    await runtime.stop(instance)
    await runtime.stop(instance)
    assert (await runtime.status(instance)).state is InstanceState.MISSING


@pytest.mark.docker
@pytest.mark.anyio
async def test_app_exiting_at_start_is_exited_with_code_and_last_log_lines(
    runtime: DockerRuntime, images: dict[str, str]
) -> None:
    instance = await runtime.deploy(make_spec(images["crash"], space_id=unique_space()))

    status = await wait_for_exit(runtime, instance)

    assert status == InstanceStatus(InstanceState.EXITED, exit_code=3, oom_killed=False)
    # Docker reads stdout and stderr through separate pipes: their relative order may vary.
    assert sorted([line async for line in runtime.logs(instance)]) == [
        "booting",
        "fatal: no model file",
    ]
    # Following an exited container gives what it wrote and ends.
    with anyio.fail_after(10):
        followed = [line async for line in runtime.logs(instance, follow=True)]
    assert "fatal: no model file" in followed


@pytest.mark.docker
@pytest.mark.anyio
async def test_app_over_memory_limit_is_oom_killed_and_others_keep_running(
    runtime: DockerRuntime, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    bystander = await runtime.deploy(make_spec(images["http"], space_id=unique_space()))
    small = Limits(cpus=0.5, memory_bytes=64 * MIB, pids=64)
    hog = await runtime.deploy(make_spec(images["hog"], space_id=unique_space(), limits=small))

    status = await wait_for_exit(runtime, hog)

    assert status.state is InstanceState.EXITED
    assert status.oom_killed
    assert status.exit_code == 137
    assert [line async for line in runtime.logs(hog)] == ["allocating"]
    assert (await runtime.status(bystander)).state is InstanceState.RUNNING
    assert (await wait_for_http(docker_client, bystander)).status_code == 200


@pytest.mark.docker
@pytest.mark.anyio
async def test_restart_after_crash_answers_on_new_host_port(
    runtime: DockerRuntime, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    instance = await runtime.deploy(make_spec(images["http"], space_id=unique_space()))
    await wait_for_http(docker_client, instance)
    docker_client.containers.get(instance.state["container_id"]).kill()
    assert (await wait_for_exit(runtime, instance)).exit_code == 137

    restarted = await runtime.restart(instance)

    assert restarted.state == instance.state
    assert restarted.port != 0
    assert (await wait_for_http(docker_client, restarted)).status_code == 200


@pytest.mark.docker
@pytest.mark.anyio
async def test_new_runtime_adopts_running_instance_from_stored_state(
    runtime: DockerRuntime, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    instance = await runtime.deploy(make_spec(images["http"], space_id=unique_space()))
    after_platform_restart = DockerRuntime(network=PREFIX, label_prefix=PREFIX)

    adopted = await after_platform_restart.adopt(instance.state)

    assert adopted == instance
    assert instance in await after_platform_restart.list_instances()
    assert (await wait_for_http(docker_client, adopted)).status_code == 200
    await runtime.stop(instance)
    assert await after_platform_restart.adopt(instance.state) is None
    assert instance not in await after_platform_restart.list_instances()


@pytest.mark.docker
@pytest.mark.anyio
async def test_follow_logs_streams_requests_and_ends_when_app_stops(
    runtime: DockerRuntime, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    instance = await runtime.deploy(make_spec(images["http"], space_id=unique_space()))
    await wait_for_http(docker_client, instance)
    seen: list[str] = []

    with anyio.fail_after(15):
        async with anyio.create_task_group() as tasks:

            async def stop_after_request_logged() -> None:
                while not any('"GET / HTTP' in line for line in seen):
                    await anyio.sleep(0.05)
                await runtime.stop(instance)

            tasks.start_soon(stop_after_request_logged)
            async for line in runtime.logs(instance, follow=True):
                seen.append(line)

    assert any('"GET / HTTP/1.1" 200' in line for line in seen)


@pytest.mark.docker
@pytest.mark.anyio
async def test_follow_logs_reader_that_cancels_leaves_no_thread_behind(
    runtime: DockerRuntime, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    instance = await runtime.deploy(make_spec(images["http"], space_id=unique_space()))
    await wait_for_http(docker_client, instance)
    threads = anyio.to_thread.current_default_thread_limiter()

    with anyio.fail_after(5), anyio.move_on_after(0.5):
        async for _ in runtime.logs(instance, follow=True):
            pass

    deadline = time.monotonic() + 5
    while threads.borrowed_tokens and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    assert threads.borrowed_tokens == 0
    assert (await runtime.status(instance)).state is InstanceState.RUNNING


@pytest.mark.docker
@pytest.mark.anyio
async def test_deploy_of_missing_image_is_not_found_and_leaves_nothing(
    runtime: DockerRuntime, docker_client: docker.DockerClient
) -> None:
    space_id = unique_space()

    with pytest.raises(NotFound, match="no-such-image"):
        await runtime.deploy(make_spec(f"{PREFIX}-no-such-image:1", space_id))

    label = {"label": f"{PREFIX}.space={space_id}"}
    assert docker_client.containers.list(all=True, filters=label) == []


@pytest.mark.docker
@pytest.mark.anyio
async def test_data_volume_survives_redeploy_and_goes_with_the_space(
    runtime: DockerRuntime, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    space_id = unique_space()
    first = await runtime.deploy(make_spec(images["http"], space_id, persistent_storage=True))
    write = ["sh", "-c", "echo kept > /data/marker"]
    assert docker_client.containers.get(first.state["container_id"]).exec_run(write).exit_code == 0
    await runtime.stop(first)

    second = await runtime.deploy(
        make_spec(images["http"], space_id, commit="f" * 40, persistent_storage=True)
    )
    read = docker_client.containers.get(second.state["container_id"]).exec_run(
        ["cat", "/data/marker"]
    )

    assert read.output == b"kept\n"
    await runtime.remove_space(space_id)
    assert docker_client.volumes.list(filters={"label": f"{PREFIX}.space={space_id}"}) == []
    assert (await runtime.status(second)).state is InstanceState.MISSING


@pytest.mark.docker
@pytest.mark.anyio
async def test_remove_space_leaves_other_space_intact(
    runtime: DockerRuntime, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    space_a, space_b = unique_space(), unique_space()
    deployed = {}
    for space_id in (space_a, space_b):
        image = build_image(
            docker_client,
            f"FROM {images['http']}\n",
            space_id.replace("/", "-"),
            labels={f"{PREFIX}.space": space_id},
        )
        deployed[space_id] = await runtime.deploy(
            make_spec(image, space_id, persistent_storage=True)
        )

    await runtime.remove_space(space_a)

    def owned_by(space_id: str) -> dict[str, int]:
        label = {"label": f"{PREFIX}.space={space_id}"}
        return {
            "containers": len(docker_client.containers.list(all=True, filters=label)),
            "images": len(docker_client.images.list(filters=label)),
            "volumes": len(docker_client.volumes.list(filters=label)),
        }

    assert owned_by(space_a) == {"containers": 0, "images": 0, "volumes": 0}
    assert owned_by(space_b) == {"containers": 1, "images": 1, "volumes": 1}
    assert (await wait_for_http(docker_client, deployed[space_b])).status_code == 200
    await runtime.remove_space(space_a)  # again: nothing left is not an error
