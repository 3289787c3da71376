"""BuildKit builds: Hugging Face's secret mounts, no trace of secrets or the CA bundle anywhere on
the engine, the CA bundle reaching pip, a time limit that really stops the build, CPU and memory
limits on the engine's BuildKit steps, and uv's cache shared by spaces."""

import os
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from spacehub.builder.buildkit import find_buildkit
from spacehub.builder.buildkit_cgroup import NotEnforced, engine_buildkit_group
from spacehub.builder.image import BuildFailed, ImageBuildOptions, build_image
from spacehub.builder.limits import BuildLimits, BuildStopped
from spacehub.builder.plan import plan_build
from spacehub.core.cgroups import CGROUP_ROOT, Cgroup, read_limits
from spacehub.core.release import Artifact
from tests.conftest import IN_CI, wait_for
from tests.test_builder import BASE_IMAGE, HOST_CA, remove_images_of_owner

pytestmark = pytest.mark.docker

OWNER = "buildkittest"
SECRET = "hf_MySecretValue-ÿ-7c41e0"
CA_MARKER = "spacehub-buildkit-ca-marker-31d7"
DIGEST_KEY = os.urandom(32)  # a platform's key: a new one each run, as a new platform has


@pytest.fixture(scope="module")
def client(docker_engine: "docker.DockerClient") -> Iterator["docker.DockerClient"]:
    yield docker_engine
    remove_images_of_owner(docker_engine, OWNER)


@pytest.fixture(scope="module")
def ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("ca") / "ca bundle.crt"
    bundle.write_text(HOST_CA.read_text() + f"\n{CA_MARKER}\n")
    return bundle


def build(
    source: Path,
    name: str,
    commit: str,
    ca_bundle: Path | None,
    *,
    secrets: dict[str, str] | None = None,
    limits: BuildLimits | None = None,
) -> tuple[Artifact, list[str], float]:
    lines: list[str] = []
    started = time.monotonic()
    try:
        artifact = build_image(
            plan_build(source, None),
            source,
            space_id=f"{OWNER}/{name}",
            label=f"{OWNER}-{name}",
            commit=commit,
            build_args={"GREETING": "hello"},
            build_secrets=secrets or {},
            options=ImageBuildOptions(BASE_IMAGE, ca_bundle, None, secrets_digest_key=DIGEST_KEY),
            log=lines.append,
            limits=limits or BuildLimits(),
        )
    finally:
        print("\n".join(lines[-40:]))
    return artifact, lines, time.monotonic() - started


def docker_space(directory: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "README.md").write_text("---\ntitle: t\nsdk: docker\napp_port: 7860\n---\n")
    (directory / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (directory / name).write_text(text)
    return directory


def saved_bytes_contain(images: list[str], needles: list[bytes]) -> set[bytes]:
    """Which of `needles` occur in any file `docker save` writes (every layer tar and config, in
    the old layout and in the OCI one alike)."""
    found: set[bytes] = set()
    overlap = max(len(needle) for needle in needles)
    with subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        with tarfile.open(fileobj=process.stdout, mode="r|") as tar:
            for member in tar:
                handle = tar.extractfile(member) if member.isfile() else None
                tail = b""
                while handle is not None and (block := handle.read(1 << 20)):
                    window = tail + block
                    found.update(needle for needle in needles if needle in window)
                    tail = window[-overlap:]
    assert process.wait(timeout=600) == 0
    return found


def test_docker_space_secret_mount_as_documented_by_hugging_face_leaves_no_trace(
    client: "docker.DockerClient", ca_bundle: Path, tmp_path: Path
) -> None:
    before = {image.id for image in client.images.list(all=True)}
    source = docker_space(
        tmp_path / "secret space",
        f"FROM {BASE_IMAGE}\n"
        "RUN --mount=type=secret,id=MY_SECRET,mode=0444,required=true "
        "cat /run/secrets/MY_SECRET > /dev/null && test -s /run/secrets/MY_SECRET\n"
        # A tool reading the CA bundle as a user would: the path the build gives it works.
        'RUN python3 -c "import os, ssl; '
        "ssl.create_default_context(cafile=os.environ['SSL_CERT_FILE'])\"\n"
        "RUN useradd -m -u 1000 user\nUSER user\n"
        'RUN test "$(wc -c < /run/secrets/MY_SECRET 2>/dev/null || echo 0)" = 0\n'
        'CMD ["python3", "-m", "http.server", "7860"]\n',
    )
    artifact, log, seconds = build(
        source, "secret", "a" * 40, ca_bundle, secrets={"MY_SECRET": SECRET, "OTHER": "x"}
    )
    print(f"docker space with a secret mount: {seconds:.1f} s")
    assert artifact.ref.startswith("sha256:")
    joined = "\n".join(log)
    assert SECRET not in joined and CA_MARKER not in joined

    history = subprocess.run(
        ["docker", "history", "--no-trunc", artifact.ref],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "/run/secrets/MY_SECRET" in history  # the user's step, as written
    assert SECRET not in history and CA_MARKER not in history

    # Every image the build left on the engine: ours by label, and any other new one.
    after = client.images.list(all=True)
    left = [
        image.id
        for image in after
        if image.id not in before
        and (
            image.labels.get("spacehub.space", "").startswith(f"{OWNER}/")
            or not image.labels.get("spacehub.space")
        )
    ]
    assert artifact.ref in left
    tags = [tag for image in after if image.id in left for tag in image.tags]
    assert tags == [f"spacehub/{OWNER}-secret:{'a' * 12}"], "no build-only images any more"
    needles = [SECRET.encode(), CA_MARKER.encode()]
    assert saved_bytes_contain(left, needles) == set()


def test_ca_bundle_lets_a_user_dockerfile_pip_install_through_the_proxy(
    client: "docker.DockerClient", ca_bundle: Path, tmp_path: Path
) -> None:
    dockerfile = (
        f"FROM {BASE_IMAGE}\n"
        "RUN useradd -m -u 1000 user\nUSER user\n"
        "RUN pip install --user --no-cache-dir --disable-pip-version-check six==1.17.0\n"
        'CMD ["python3", "-c", "import six; print(six.__version__)"]\n'
    )
    source = docker_space(tmp_path / "pip space", dockerfile)
    artifact, _, seconds = build(source, "pip", "b" * 40, ca_bundle)
    print(f"pip install with the CA bundle: {seconds:.1f} s")
    output = client.containers.run(artifact.ref, remove=True).decode()
    assert output.strip() == "1.17.0"
    env = client.images.get(artifact.ref).attrs["Config"]["Env"]
    assert not [entry for entry in env if "spacehub-build" in entry], env


def test_build_over_its_time_limit_is_stopped_and_its_step_ends(
    ca_bundle: Path, tmp_path: Path
) -> None:
    marker = f"spacehub-sleeper-{os.getpid()}"
    source = docker_space(
        tmp_path / "slow", f"FROM {BASE_IMAGE}\nRUN echo {marker} && exec sleep 600\n"
    )
    started = time.monotonic()
    with pytest.raises(BuildStopped) as stopped:
        build(source, "slow", "c" * 40, None, limits=BuildLimits(timeout_seconds=5))
    assert "time limit of 5 s" in stopped.value.message
    assert time.monotonic() - started < 30

    def step_processes() -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in command or b"sleep 600" in command:
                found.append(command.decode(errors="replace"))
        return found

    wait_for(lambda: not step_processes(), 20, "the build step to end")


def test_cancel_stops_a_running_build(tmp_path: Path) -> None:
    source = docker_space(tmp_path / "cancelled", f"FROM {BASE_IMAGE}\nRUN sleep 600\n")
    limits = BuildLimits()
    threading.Timer(3, limits.cancel.set).start()
    with pytest.raises(BuildStopped, match="cancelled"):
        build(source, "cancelled", "d" * 40, None, limits=limits)


def test_a_second_space_with_the_same_requirements_reuses_uvs_cache(
    ca_bundle: Path, tmp_path: Path
) -> None:
    app = "import streamlit as st\nst.write('hi')\n"
    readme = "---\ntitle: t\nsdk: streamlit\n---\n"
    # A package with a large wheel (6 MB), pinned: uv reports "Downloading sympy" unless its
    # cache has it; a different comment makes each space's requirements step run (no layer
    # reuse), so the second space's uv finds sympy in the cache the first one filled.
    times = []
    for index in range(2):
        source = tmp_path / f"space {index}"
        source.mkdir()
        (source / "README.md").write_text(readme)
        (source / "app.py").write_text(app)
        (source / "requirements.txt").write_text(f"sympy==1.14.0\n# space {index} {time.time()}\n")
        _, log, seconds = build(source, f"uv-cache-{index}", f"{index + 1}" * 40, ca_bundle)
        times.append(seconds)
        step = [line for line in log if re.search(r"sympy|Prepared|Installed", line)]
        print(f"space {index}: {seconds:.1f} s", *step, sep="\n")
    assert [line for line in log if "+ sympy==1.14.0" in line]
    assert not [line for line in log if re.search(r"Download(ing|ed) sympy", line)]
    print(f"uv cache: first {times[0]:.1f} s, second {times[1]:.1f} s")


def test_no_buildkit_cli_is_a_build_failure_saying_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(BuildFailed) as failure:
        build_image(
            plan_build(docker_space(tmp_path / "x", "FROM scratch\n"), None),
            tmp_path / "x",
            space_id=f"{OWNER}/x",
            label=f"{OWNER}-x",
            commit="e" * 40,
            build_args={},
            build_secrets={},
            options=ImageBuildOptions(BASE_IMAGE, None, None, docker_cli="false"),
            log=lambda line: None,
            limits=BuildLimits(),
        )
    assert "docker-buildx" in failure.value.message


def test_the_cli_found_builds_with_buildkit() -> None:
    cli = find_buildkit()
    assert "BuildKit through" in cli.description
    if not cli.buildx:  # `DOCKER_BUILDKIT=1 docker build` must work with it
        version = subprocess.run(
            [cli.path, "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert int(version.split(".")[0]) < 23, version


def test_a_step_that_mounts_a_secret_is_rebuilt_for_another_value_or_space(
    client: "docker.DockerClient", tmp_path: Path
) -> None:
    """BuildKit leaves secret values out of its cache keys: without the digest ARG, the second
    space got the layer built with the first space's secret."""
    dockerfile = (
        f"FROM {BASE_IMAGE}\n"
        "RUN --mount=type=secret,id=TOKEN,mode=0444,required=true "
        "cp /run/secrets/TOKEN /token-copy\n"
        'CMD ["python3", "-m", "http.server", "7860"]\n'
    )
    seen = {}
    for name, value in (("first", "token-one"), ("second", "token-two")):
        source = docker_space(tmp_path / name, dockerfile)
        artifact, _, _ = build(source, name, "b" * 40, None, secrets={"TOKEN": value})
        # Detached, then waited for: run(remove=True) sometimes returns before the output.
        container = client.containers.run(artifact.ref, ["cat", "/token-copy"], detach=True)
        container.wait(timeout=60)
        seen[name] = container.logs()
        container.remove()
    assert seen == {"first": b"token-one", "second": b"token-two"}, "a secret layer was reused"


MiB = 1024 * 1024
# Allocates 400 MiB and touches every page (bytearray's zeros may be pages never written).
HUNGRY_STEP = (
    'RUN echo {marker} && python3 -c "b = bytearray(400 * 1024 * 1024); '
    "b[::4096] = b'x' * len(range(0, len(b), 4096)); print('allocated', len(b) >> 20, 'MiB')\"\n"
)


def hungry_space(directory: Path) -> Path:
    marker = f"hungry-{os.getpid()}-{time.time()}"  # a new step each run: never cached
    return docker_space(directory, f"FROM {BASE_IMAGE}\n" + HUNGRY_STEP.format(marker=marker))


@pytest.fixture
def buildkit_group(client: "docker.DockerClient") -> Cgroup:
    """The engine's BuildKit group; where it cannot be capped: a skip, or a failure in CI."""
    try:
        return engine_buildkit_group(client)
    except NotEnforced as error:
        if IN_CI:
            pytest.fail(f"CI=true needs the engine's BuildKit cgroup to be writable: {error}")
        pytest.skip(f"the engine's BuildKit steps cannot be capped here: {error}")


def test_a_step_over_the_memory_limit_ends_the_build_naming_memory(
    buildkit_group: Cgroup, tmp_path: Path
) -> None:
    before = read_limits(buildkit_group)
    source = hungry_space(tmp_path / "hungry space")
    with pytest.raises(BuildStopped) as stopped:
        build(source, "hungry", "f" * 40, None, limits=BuildLimits(memory_bytes=200 * MiB))
    assert "memory limit of 200 MiB" in stopped.value.message
    assert read_limits(buildkit_group) == before, "the engine's group keeps its own limits"


def test_the_same_step_builds_without_a_memory_limit(
    buildkit_group: Cgroup, tmp_path: Path
) -> None:
    source = hungry_space(tmp_path / "hungry space")
    artifact, log, _ = build(source, "hungry-ok", "f" * 40, None)
    assert artifact.ref.startswith("sha256:")
    assert [line for line in log if "allocated 400 MiB" in line]
    # A limit above what the step needs builds too (the cap is set, and not in the way).
    source = hungry_space(tmp_path / "roomy space")
    roomy = BuildLimits(memory_bytes=1024 * MiB)
    _, log, _ = build(source, "hungry-ok", "e" * 40, None, limits=roomy)
    assert [line for line in log if "capped through the engine's cgroup" in line]


def _cpu_seconds(group: Cgroup) -> float:
    """CPU time the group's processes used, from cpuacct (v1) or cpu.stat (v2)."""
    assert group.cpu is not None
    if group.version == 2:
        stat = dict(line.split() for line in (group.cpu / "cpu.stat").read_text().splitlines())
        return int(stat["usage_usec"]) / 1e6
    relative = group.cpu.relative_to(CGROUP_ROOT / "cpu")
    return int((CGROUP_ROOT / "cpuacct" / relative / "cpuacct.usage").read_text()) / 1e9


def _throttled(group: Cgroup) -> int:
    assert group.cpu is not None
    stat = dict(line.split() for line in (group.cpu / "cpu.stat").read_text().splitlines())
    return int(stat["nr_throttled"])


def test_a_cpu_bound_step_under_half_a_core_gets_about_half_a_core(
    buildkit_group: Cgroup, tmp_path: Path
) -> None:
    busy_seconds = 8
    marker = f"busy-{os.getpid()}-{time.time()}"
    source = docker_space(
        tmp_path / "busy space",
        f"FROM {BASE_IMAGE}\n"
        f'RUN echo {marker} && python3 -c "import time; start = time.time(); '
        f"any(time.time() - start > {busy_seconds} for _ in iter(int, 1)); "
        "print('share', round(time.process_time() / (time.time() - start), 2))\"\n",
    )
    before = read_limits(buildkit_group)
    used, throttled = _cpu_seconds(buildkit_group), _throttled(buildkit_group)
    _, log, seconds = build(source, "busy", "9" * 40, None, limits=BuildLimits(cpus=0.5))
    used = _cpu_seconds(buildkit_group) - used
    throttled = _throttled(buildkit_group) - throttled
    share = float(next(line for line in log if "share " in line).rsplit(maxsplit=1)[-1])
    print(
        f"cpus=0.5: step share {share}, group {used:.1f} s of CPU in {seconds:.1f} s, "
        f"throttled {throttled} times"
    )
    assert 0.2 <= share <= 0.65, share  # ~0.5; less when the host's cores are busy
    assert used <= 0.65 * seconds, (used, seconds)  # every step of the engine, capped
    assert used >= 0.2 * busy_seconds, used
    assert throttled > 0
    assert read_limits(buildkit_group) == before
