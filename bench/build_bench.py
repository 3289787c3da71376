"""Time spacehub's image builds against a plain `docker build` of the same thing, in the same run.

gradio-greet builds cold (no layer cache, every package downloaded through the same network) and
then rebuilds after a code-only change. docker-fastapi (a user Dockerfile, built with the CA
bundle and a build secret, so spacehub must keep them out of the image) builds once and then
times a code-only rebuild. Run: python -m bench.build_bench
"""

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from spacehub.builder.dockerfile import DEFAULT_SDK_VERSIONS
from spacehub.builder.image import ImageBuildOptions, build_image
from spacehub.builder.limits import BuildLimits
from spacehub.builder.plan import plan_build

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BASELINE_DOCKERFILE = """\
FROM {base}
RUN useradd -m -u 1000 user
COPY ca.crt /tmp/ca.crt
RUN pip install --no-cache-dir --cert /tmp/ca.crt gradio=={version} && rm /tmp/ca.crt
USER user
ENV GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860
WORKDIR /home/user/app
COPY --chown=user app/ .
CMD ["python", "app.py"]
"""
# What a user does by hand to build docker-fastapi behind the same TLS-inspecting network.
BASELINE_CA_LINES = "COPY ca.crt /tmp/ca.crt\nENV PIP_CERT=/tmp/ca.crt\n"
SECRET_STEP = "RUN --mount=type=secret,id=TOKEN,mode=0444 test -s /run/secrets/TOKEN\n"
TAGS = (
    "spacehub/bench-greet:111111111111",
    "spacehub/bench-greet:222222222222",
    "spacehub/bench-fastapi:333333333333",
    "spacehub/bench-fastapi:444444444444",
    "spacehub-bench/baseline:latest",
    "spacehub-bench/baseline-fastapi:latest",
)


def time_spacehub(
    source: Path, options: ImageBuildOptions, label: str, commit: str, secrets: dict[str, str]
) -> float:
    started = time.monotonic()
    build_image(
        plan_build(source, None),
        source,
        space_id=f"bench/{label}",
        label=f"bench-{label}",
        commit=commit,
        build_args={},
        build_secrets=secrets,
        options=options,
        log=lambda line: None,
        limits=BuildLimits(),
    )
    return time.monotonic() - started


def time_docker_build(context: Path, tag: str, no_cache: bool) -> float:
    command = ["docker", "build", "-q", "-t", tag, str(context)]
    if no_cache:
        command.insert(2, "--no-cache")
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, timeout=1800)
    return time.monotonic() - started


def change_code(app: Path) -> None:
    app.write_text(app.read_text() + f"\n# edited {time.time()}\n")


def bench_gradio(tmp: Path, example: Path, base: str, ca_bundle: Path) -> dict[str, float]:
    ours = tmp / "ours"
    shutil.copytree(example, ours)
    baseline = tmp / "baseline"
    shutil.copytree(example, baseline / "app")
    shutil.copy(ca_bundle, baseline / "ca.crt")
    (baseline / "Dockerfile").write_text(
        BASELINE_DOCKERFILE.format(base=base, version=DEFAULT_SDK_VERSIONS["gradio"])
    )
    cold = ImageBuildOptions(base, ca_bundle, None, no_cache=True)
    warm = ImageBuildOptions(base, ca_bundle, None)
    tag = "spacehub-bench/baseline:latest"
    results = {
        "spacehub cold (no cache)": time_spacehub(ours, cold, "greet", "1" * 40, {}),
        "docker build cold (no cache)": time_docker_build(baseline, tag, no_cache=True),
    }
    change_code(ours / "app.py")
    change_code(baseline / "app" / "app.py")
    results["spacehub code-only rebuild"] = time_spacehub(ours, warm, "greet", "2" * 40, {})
    results["docker build code-only rebuild"] = time_docker_build(baseline, tag, no_cache=False)
    return results


def bench_docker_sdk(tmp: Path, ca_bundle: Path, base: str) -> dict[str, float]:
    ours = tmp / "fastapi"
    shutil.copytree(EXAMPLES / "docker-fastapi", ours)
    dockerfile = (ours / "Dockerfile").read_text()
    (ours / "Dockerfile").write_text(
        dockerfile.replace("COPY --chown=user . .", SECRET_STEP + "COPY --chown=user . .")
    )
    baseline = tmp / "fastapi-baseline"
    shutil.copytree(EXAMPLES / "docker-fastapi", baseline)
    shutil.copy(ca_bundle, baseline / "ca.crt")
    first_line, rest = dockerfile.split("\n", 1)
    (baseline / "Dockerfile").write_text(f"{first_line}\n{BASELINE_CA_LINES}{rest}")
    options = ImageBuildOptions(base, ca_bundle, None)
    secrets = {"TOKEN": "bench-secret"}
    tag = "spacehub-bench/baseline-fastapi:latest"
    time_spacehub(ours, options, "fastapi", "3" * 40, secrets)
    time_docker_build(baseline, tag, no_cache=False)
    change_code(ours / "app.py")
    change_code(baseline / "app.py")
    return {
        "spacehub docker-sdk code-only": time_spacehub(ours, options, "fastapi", "4" * 40, secrets),
        "docker build docker-sdk code-only": time_docker_build(baseline, tag, no_cache=False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--example", type=Path, default=EXAMPLES / "gradio-greet")
    parser.add_argument("--base-image", default="python:3.11-slim")
    parser.add_argument(
        "--ca-bundle", type=Path, default=Path("/etc/ssl/certs/ca-certificates.crt")
    )
    parser.add_argument("--skip-gradio", action="store_true", help="only the docker-sdk case")
    arguments = parser.parse_args()
    results: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="spacehub-bench-") as tmp:
            if not arguments.skip_gradio:
                results |= bench_gradio(
                    Path(tmp), arguments.example, arguments.base_image, arguments.ca_bundle
                )
            results |= bench_docker_sdk(Path(tmp), arguments.ca_bundle, arguments.base_image)
    finally:
        subprocess.run(
            ["docker", "rmi", "-f", *TAGS], capture_output=True, timeout=120, check=False
        )
    for name, seconds in results.items():
        print(f"{name:36} {seconds:7.1f} s")
    for kind in ("cold (no cache)", "code-only rebuild", "docker-sdk code-only"):
        if f"spacehub {kind}" in results:
            ratio = results[f"spacehub {kind}"] / results[f"docker build {kind}"]
            print(f"ratio spacehub / docker build, {kind}: {ratio:.2f}")


if __name__ == "__main__":
    main()
