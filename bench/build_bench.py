"""Time spacehub's image build of gradio-greet against a plain `docker build`, in the same run.

Both sides build cold (no layer cache, every package downloaded through the same network) and
then rebuild after a code-only change (layer cache on). Run: python -m bench.build_bench
"""

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from spacehub.builder.dockerfile import DEFAULT_SDK_VERSIONS
from spacehub.builder.image import ImageBuildOptions, build_image
from spacehub.builder.plan import plan_build

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


def time_spacehub(source: Path, options: ImageBuildOptions, commit: str) -> float:
    started = time.monotonic()
    build_image(
        plan_build(source, None),
        source,
        space_id="bench/greet",
        label="bench-greet",
        commit=commit,
        build_args={},
        build_secrets={},
        options=options,
        log=lambda line: None,
    )
    return time.monotonic() - started


def time_docker_build(context: Path, no_cache: bool) -> float:
    command = ["docker", "build", "-q", "-t", "spacehub-bench/baseline:latest", str(context)]
    if no_cache:
        command.insert(2, "--no-cache")
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, timeout=1800)
    return time.monotonic() - started


def change_code(app: Path) -> None:
    app.write_text(app.read_text() + f"\n# edited {time.time()}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--example", type=Path, default=Path("/work/shared/examples/gradio-greet"))
    parser.add_argument("--base-image", default="python:3.11-slim")
    parser.add_argument(
        "--ca-bundle", type=Path, default=Path("/etc/ssl/certs/ca-certificates.crt")
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spacehub-bench-") as tmp:
        ours = Path(tmp) / "ours"
        shutil.copytree(arguments.example, ours)
        baseline = Path(tmp) / "baseline"
        shutil.copytree(arguments.example, baseline / "app")
        shutil.copy(arguments.ca_bundle, baseline / "ca.crt")
        (baseline / "Dockerfile").write_text(
            BASELINE_DOCKERFILE.format(
                base=arguments.base_image, version=DEFAULT_SDK_VERSIONS["gradio"]
            )
        )
        cold = ImageBuildOptions(arguments.base_image, arguments.ca_bundle, None, no_cache=True)
        warm = ImageBuildOptions(arguments.base_image, arguments.ca_bundle, None)
        results = {
            "spacehub cold (no cache)": time_spacehub(ours, cold, "1" * 40),
            "docker build cold (no cache)": time_docker_build(baseline, no_cache=True),
        }
        change_code(ours / "app.py")
        change_code(baseline / "app" / "app.py")
        results["spacehub code-only rebuild"] = time_spacehub(ours, warm, "2" * 40)
        results["docker build code-only rebuild"] = time_docker_build(baseline, no_cache=False)
    subprocess.run(
        [
            "docker",
            "rmi",
            "-f",
            "spacehub/bench-greet:111111111111",
            "spacehub/bench-greet:222222222222",
            "spacehub-bench/baseline:latest",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    for name, seconds in results.items():
        print(f"{name:34} {seconds:7.1f} s")
    for kind in ("cold (no cache)", "code-only rebuild"):
        ratio = results[f"spacehub {kind}"] / results[f"docker build {kind}"]
        print(f"ratio spacehub / docker build, {kind}: {ratio:.2f}")


if __name__ == "__main__":
    main()
