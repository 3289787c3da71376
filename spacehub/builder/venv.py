"""Venv releases for the `local` runtime: the app's files plus a virtual environment made with uv.

The environment is shared: its name is the hash of what got installed (`uv pip freeze` of the
SDK, `pre-requirements.txt` and `requirements.txt`, installed in one `uv pip install` pass, as
by hand) and the interpreter, so a code-only push and every space with the same dependencies
reuse one `DATA_DIR/venvs/<key>`. It is made in a temporary directory (relocatable) and renamed
into place whole, without bytecode: the first space does not wait ~12 s for it (its first start
imports from source once); the local runtime compiles it once that start is over, and every
later start finds `.pyc` files (import gradio: 2.7 s with them, 5.3 s without).

As Docker's layer cache does for an unchanged requirements file, requirements identical to
those a venv was made from reuse it without installing again (`venvs/inputs/<hash>` names it);
a factory rebuild installs again, refreshing uv's cached index pages.
"""

import contextlib
import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from spacehub.builder.build_processes import BuildProcesses
from spacehub.builder.dockerfile import DEFAULT_SDK_VERSIONS, SDK_COMPANIONS
from spacehub.builder.limits import BuildLimits
from spacehub.builder.plan import BuildPlan
from spacehub.builder.static import replace_directory, same_files
from spacehub.core.release import VENV_APP_DIR, VENV_MANIFEST, Artifact, VenvManifest

UV_TIMEOUT_SECONDS = 1800
PROBE_TIMEOUT_SECONDS = 60
_COMPLETE = ".spacehub-complete"
_IGNORED = shutil.ignore_patterns(".git")
_PYTHONS: dict[str, tuple[str, str, str]] = {}


class BuildFailed(Exception):
    """The release cannot be made; the message says why, for the build log and BUILD_ERROR."""


@dataclass(frozen=True)
class VenvBuildOptions:
    venvs_dir: Path  # DATA_DIR/venvs
    cache_dir: Path  # DATA_DIR/cache/uv
    ca_bundle: Path | None = None
    pip_index_url: str | None = None
    no_cache: bool = False  # a factory rebuild: resolve again against the index, no cached pages


def build_venv_release(
    plan: BuildPlan,
    source: Path,
    releases_dir: Path,
    commit: str,
    options: VenvBuildOptions,
    build_secrets: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
    limits: BuildLimits | None = None,
) -> Artifact:
    """Resolve and install the space's dependencies (shared venv), then publish its files.

    uv runs within `limits` (CPU, memory, time, cancel); going over one raises `BuildStopped`.
    """
    config = plan.config
    if config.sdk not in DEFAULT_SDK_VERSIONS:
        raise BuildFailed(
            f"{config.sdk} spaces need the Docker runtime: this platform runs apps as local "
            "processes (start it with Docker running, or --runtime docker)"
        )
    check_debian_packages(plan.debian_packages)
    processes = BuildProcesses(limits or BuildLimits(), log)
    try:
        return _build_in(plan, source, releases_dir, commit, options, build_secrets, log, processes)
    finally:
        processes.close()


def _build_in(
    plan: BuildPlan,
    source: Path,
    releases_dir: Path,
    commit: str,
    options: VenvBuildOptions,
    build_secrets: Mapping[str, str] | None,
    log: Callable[[str], None],
    processes: BuildProcesses,
) -> Artifact:
    config = plan.config
    uv = UvRunner(options, dict(build_secrets or {}), log, processes)
    python, version, prefix = uv.find_python(config.python_version)
    log(f"Python {version} ({python})")
    requirements = _requirements(plan, source)
    inputs = options.venvs_dir / "inputs" / venv_key(requirements, python, version)
    key = None if options.no_cache else _read_key(inputs)
    if key is not None and (options.venvs_dir / key / _COMPLETE).is_file():
        log(f"Reusing the virtual environment {key} (same requirements)")
    else:
        key = uv.install(python, version, requirements)
        _write_key(inputs, key)
    venv = options.venvs_dir / key
    processes.check()
    manifest = VenvManifest(
        sdk=config.sdk,
        app_file=config.effective_app_file,
        venv=str(venv),
        python_version=version,
        python_prefix=prefix,
        key=key,
    )
    release = publish_release(source, releases_dir, commit, manifest)
    return Artifact(kind="venv", ref=str(release), commit=commit)


def find_python_early(options: VenvBuildOptions, version: str) -> None:
    """Look up the interpreter for `version` before a build needs it (a worker's start): asking
    uv takes most of a second where PATH holds pyenv shims; a missing one is the build's error."""
    with contextlib.suppress(BuildFailed, OSError, subprocess.SubprocessError):
        UvRunner(options, {}, lambda _line: None).find_python(version)


def venv_key(lock: str, python: str, version: str) -> str:
    digest = hashlib.sha256(f"{python}\n{version}\n{lock}".encode()).hexdigest()
    return f"py{version}-{digest[:24]}"


def _read_key(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _write_key(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}")
    partial.write_text(key)
    partial.replace(path)


def check_debian_packages(packages: tuple[str, ...]) -> None:
    """packages.txt on this runtime: what the host has installed is fine, the rest is an error."""
    if not packages:
        return
    names = sorted({package.split("=", 1)[0] for package in packages})
    installed: set[str] = set()
    if shutil.which("dpkg-query"):
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", *names],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )
        for line in result.stdout.splitlines():
            name, _, status = line.partition(" ")
            if status.strip() == "installed":
                installed.add(name.split(":", 1)[0])
    missing = [name for name in names if name not in installed]
    if missing:
        raise BuildFailed(
            "packages.txt names Debian packages that are not installed on this host: "
            f"{', '.join(missing)}. Apps run as local processes here: install them on the host "
            "(apt-get install), or run the platform with Docker"
        )


def publish_release(source: Path, releases_dir: Path, commit: str, manifest: VenvManifest) -> Path:
    """`releases_dir/<commit>`: the checkout in `app/` and `release.json`, appearing whole."""
    final = releases_dir / commit
    text = manifest.to_json()
    manifest_path = final / VENV_MANIFEST
    if (
        manifest_path.is_file()
        and manifest_path.read_text() == text
        and same_files(source, final / VENV_APP_DIR)
    ):
        return final
    releases_dir.mkdir(parents=True, exist_ok=True)
    partial = releases_dir / f".{commit}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial / VENV_APP_DIR, symlinks=True, ignore=_IGNORED)
    (partial / VENV_MANIFEST).write_text(text)
    replace_directory(partial, final)
    return final


def _requirements(plan: BuildPlan, source: Path) -> str:
    """What the Docker template installs, as one input: pre-requirements, SDK, requirements."""
    config = plan.config
    version = config.sdk_version or DEFAULT_SDK_VERSIONS[config.sdk]
    parts = []
    if plan.has_pre_requirements:
        parts.append((source / "pre-requirements.txt").read_text(encoding="utf-8"))
    parts.append("\n".join((f"{config.sdk}=={version}", *SDK_COMPANIONS[config.sdk])))
    if plan.has_requirements:
        parts.append((source / "requirements.txt").read_text(encoding="utf-8"))
    return "\n".join(parts) + "\n"


class UvRunner:
    """uv as the builder runs it: its own cache, no interpreter downloads, the build's CA/index."""

    def __init__(
        self,
        options: VenvBuildOptions,
        secrets: dict[str, str],
        log: Callable[[str], None],
        processes: BuildProcesses | None = None,
    ) -> None:
        import uv

        self.binary = uv.find_uv_bin()
        self.options = options
        self.log = log
        self.processes = processes or BuildProcesses(BuildLimits(), log)
        env = {
            key: os.environ[key]
            for key in ("PATH", "HOME", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR")
            if key in os.environ
        }
        env.update(
            UV_CACHE_DIR=str(options.cache_dir),
            UV_PYTHON_DOWNLOADS="never",
            UV_NO_PROGRESS="1",
            UV_NO_CONFIG="1",
        )
        if options.ca_bundle is not None:
            env["SSL_CERT_FILE"] = str(options.ca_bundle)
        if options.pip_index_url:
            env["UV_DEFAULT_INDEX"] = options.pip_index_url
        self.env = env
        # Requirements may name `${SECRET}`s, which uv expands, as in the Docker build.
        self.resolve_env = {**secrets, **env}

    def find_python(self, version: str) -> tuple[str, str, str]:
        """The path, full version and prefix of a host interpreter matching `version`.

        Remembered per process while the interpreter exists: asking uv takes most of a second
        on hosts whose PATH holds pyenv shims, and a code-only push should not pay it.
        """
        known = _PYTHONS.get(version)
        if known is not None and Path(known[0]).exists():
            return known
        found = self._find_python(version)
        _PYTHONS[version] = found
        return found

    def _find_python(self, version: str) -> tuple[str, str, str]:
        result = self._run_quiet(["python", "find", "--system", "--no-project", version])
        path = result.stdout.strip()
        if result.returncode != 0 or not path:
            raise BuildFailed(
                f"python_version {version}: no such Python interpreter on this host (apps run as "
                "local processes here, and interpreters are not downloaded): install "
                f"python{version}, or pick an installed version in README.md"
            )
        probe = subprocess.run(
            [path, "-c", "import sys; print(sys.version.split()[0]); print(sys.base_prefix)"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )
        full_version, _, prefix = probe.stdout.strip().partition("\n")
        if probe.returncode != 0 or not prefix:
            raise BuildFailed(f"the Python interpreter {path} does not run: {probe.stderr.strip()}")
        return path, full_version, prefix

    def install(self, python: str, version: str, requirements: str) -> str:
        """A relocatable venv holding `requirements`, filed under the key of what got installed;
        returns the key. A venv with exactly those packages already there is reused.

        One uv pass resolves, downloads and installs together (as `uv pip install` by hand),
        into a temporary venv that is renamed into place whole once complete.
        """
        venvs = self.options.venvs_dir
        venvs.mkdir(parents=True, exist_ok=True)
        partial = venvs / f".partial-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            self.log("Creating a virtual environment")
            self._stream(
                ["venv", "--quiet", "--relocatable", "--python", python, str(partial)],
                what="creating the virtual environment",
            )
            wanted = partial / "requirements.in"
            wanted.write_text(requirements)
            command = ["pip", "install", "--python", str(partial / "bin" / "python")]
            if self.options.no_cache:
                command.append("--refresh")
            self.log("Installing dependencies with uv")
            self._stream(
                [*command, "-r", str(wanted)], env=self.resolve_env, what="installing dependencies"
            )
            lock = self._freeze(partial)
            key = venv_key(lock, python, version)
            venv = venvs / key
            if (venv / _COMPLETE).is_file():
                self.log(f"Reusing the virtual environment {key} (same dependencies)")
                return key
            (partial / "requirements.lock").write_text(lock)
            (partial / _COMPLETE).write_text("")
            try:
                partial.rename(venv)
            except OSError:
                if not (venv / _COMPLETE).is_file():  # not another build that made it meanwhile
                    raise
                return key
        finally:
            shutil.rmtree(partial, ignore_errors=True)  # nothing left there after the rename
        self.log(f"Created the virtual environment {key}")
        return key

    def _freeze(self, venv: Path) -> str:
        """What is installed in `venv`, one `name==version` a line: the venv's lock."""
        result = self._run_quiet(["pip", "freeze", "--python", str(venv / "bin" / "python")])
        if result.returncode != 0:
            raise BuildFailed(f"uv could not list the installed packages: {result.stderr}".strip())
        return result.stdout

    def _run_quiet(self, command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binary, *command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )

    def _stream(
        self,
        command: list[str],
        what: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """Run uv with its output going line by line to the build log; fail with its last lines.

        Within the build's limits: a cancel, its time limit or its memory raise `BuildStopped`.
        """
        process = self.processes.popen(
            [self.binary, *command],
            cwd=cwd,
            env=env or self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        lines: list[str] = []
        with self.processes.watching(process, UV_TIMEOUT_SECONDS):
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip("\n")
                lines = [*lines[-19:], line]
                self.log(line)
            code = process.wait()
        if code != 0:
            tail = "\n".join(lines)
            raise BuildFailed(f"uv failed {what} (exit code {code}):\n{tail}".strip())
