"""Git over SSH: an asyncssh server in `spacehub serve` that runs upload-pack and receive-pack.

`ssh://git@HOST:SSH_PORT/spaces/{owner}/{name}` and `git@HOST:spaces/{owner}/{name}` (with or
without `.git`). Users' public keys are the only way in; a key acts as its user with the write
role; the same access decision, hooks and push cap as git over HTTP (git/transport.py). The
only commands are git's two services and `git-lfs-authenticate` (git-lfs then moves objects
over HTTP with a short-lived token, as on GitHub): no shell, no forwarding, no sftp.
"""

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import shlex
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncssh
from anyio import to_thread

from spacehub.core.errors import InvalidInput, RepoNotFound, SpacehubError
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.git.repos import repo_path
from spacehub.platform.git.transport import NOT_FOUND, authorize_git, start_git_service
from spacehub.platform.models import TokenRole, User
from spacehub.platform.services import accounts, spaces, ssh_keys
from spacehub.platform.services.accounts import Caller

log = logging.getLogger(__name__)

HOST_KEY_FILE = "ssh_host_ed25519_key"
SERVICES = ("git-upload-pack", "git-receive-pack")
LFS_AUTHENTICATE = "git-lfs-authenticate"
LFS_OPERATIONS = ("download", "upload")
LFS_TOKEN_LIFETIME = timedelta(hours=1)
REPO_PATH = re.compile(r"/?spaces/(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/?")
GIT_PROTOCOL = re.compile(r"version=[0-9]+(?::[A-Za-z0-9=_.-]+)*")
CHUNK = 64 * 1024
SERVICE_TIMEOUT = 3600  # one clone or push; a stuck client must not hold a git process forever
STOP_TIMEOUT = 10
USER_ID = "spacehub_user_id"
SSH_CALLER = "ssh key"  # a key acts as its user with the write role


@dataclass(frozen=True)
class GitRequest:
    service: str
    owner: str
    name: str
    pushing: bool


@dataclass(frozen=True)
class GitTarget:
    space_id: str
    repo: Path


def parse_command(command: str) -> GitRequest:
    """`git-upload-pack '/spaces/owner/name.git'` (quoted as git quotes it) → GitRequest.

    Also `git-lfs-authenticate spaces/owner/name download|upload`.
    """
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise InvalidInput(f"cannot read the command: {error}") from error
    lfs = len(words) == 3 and words[0] == LFS_AUTHENTICATE and words[2] in LFS_OPERATIONS
    if not lfs and (len(words) != 2 or words[0] not in SERVICES):
        raise InvalidInput(
            "only git clone, fetch and push are served here "
            "(git-upload-pack or git-receive-pack 'spaces/OWNER/NAME')"
        )
    match = REPO_PATH.fullmatch(words[1])
    if match is None:
        raise InvalidInput(f"not a space repository: {words[1]!r} (use spaces/OWNER/NAME)")
    pushing = words[0] == "git-receive-pack" or words[-1] == "upload"
    return GitRequest(words[0], match["owner"], match["name"], pushing)


def load_host_key(data_dir: Path) -> asyncssh.SSHKey:
    """The server's ed25519 host key, made once in the data dir (0600) and reused after."""
    path = data_dir / HOST_KEY_FILE
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="spacehub host key")
        data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(key.export_private_key())
            path.with_name(HOST_KEY_FILE + ".pub").write_bytes(key.export_public_key())
    return asyncssh.read_private_key(path)


def resolve_target(platform: Platform, user_id: int, request: GitRequest) -> GitTarget:
    """The repository the key's user may use for `request`, or the error HTTP would give."""
    with session_scope(platform.engine) as session:
        user = session.get(User, user_id)
        if user is None or user.disabled:  # disabled since the connection signed in
            raise RepoNotFound(NOT_FOUND)
        caller = Caller(user=user, role=TokenRole.WRITE, token_name=SSH_CALLER)
        space = spaces.find_space(session, request.owner, request.name)
        space = authorize_git(session, caller, space, request.pushing)
        owner = spaces.owner_of(session, space)
        return GitTarget(
            space_id=f"{owner.name}/{space.name}",
            repo=repo_path(platform.settings.repos_dir, owner.name, space.name).resolve(),
        )


def lfs_credentials(platform: Platform, user_id: int, request: GitRequest) -> dict:
    """git-lfs-authenticate's answer: the space's LFS URL and a short-lived token for it."""
    target = resolve_target(platform, user_id, request)
    role = TokenRole.WRITE if request.pushing else TokenRole.READ
    with session_scope(platform.engine) as session:
        user = session.get(User, user_id)
        assert user is not None
        token = accounts.create_short_lived_token(
            session, user, role, "git-lfs over SSH", LFS_TOKEN_LIFETIME
        )
    basic = base64.b64encode(f"{user.name}:{token}".encode()).decode()
    return {
        "href": f"{platform.settings.effective_public_url}/spaces/{target.space_id}.git/info/lfs",
        "header": {"Authorization": f"Basic {basic}"},
        # A little less than the token lives, so that git-lfs asks again in time.
        "expires_in": int(LFS_TOKEN_LIFETIME.total_seconds()) - 60,
    }


def _find_key_holder(platform: Platform, fingerprint: str) -> tuple[int, int, str] | None:
    with session_scope(platform.engine) as session:
        found = ssh_keys.key_holder(session, fingerprint)
        if found is None:
            return None
        user, key = found
        assert user.id is not None and key.id is not None
        return user.id, key.id, user.name


def _record_use(platform: Platform, key_id: int) -> None:
    with session_scope(platform.engine) as session:
        ssh_keys.record_use(session, key_id)


class _KeyAuth(asyncssh.SSHServer):
    """Public keys only: the key that signed the login says which user connects."""

    def __init__(self, platform: Platform, connections: set[asyncssh.SSHServerConnection]):
        self.platform = platform
        self.connections = connections
        self.connection: asyncssh.SSHServerConnection | None = None
        self.holder: tuple[int, int, str] | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.connection = conn
        self.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.connections.discard(self.connection)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh asks again for the key that signs, right before accepting the login, so
        # the last holder found is the one that authenticated.
        fingerprint = key.get_fingerprint("sha256")
        self.holder = await to_thread.run_sync(_find_key_holder, self.platform, fingerprint)
        return self.holder is not None

    async def auth_completed(self) -> None:
        assert self.connection is not None and self.holder is not None
        user_id, key_id, user_name = self.holder
        self.connection.set_extra_info(**{USER_ID: user_id, "spacehub_user_name": user_name})
        await to_thread.run_sync(_record_use, self.platform, key_id)


@dataclass
class SshServer:
    """The listening server and its open connections (closed on stop)."""

    acceptor: asyncssh.SSHAcceptor
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)

    async def stop(self) -> None:
        self.acceptor.close()
        await self.acceptor.wait_closed()
        for connection in list(self.connections):
            connection.close()
        for connection in list(self.connections):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connection.wait_closed(), STOP_TIMEOUT)


async def start_ssh_server(platform: Platform) -> SshServer | None:
    """Listen on SSH_HOST:SSH_PORT; None when SSH_PORT is 0 (git over SSH turned off)."""
    settings = platform.settings
    if settings.ssh_port == 0:
        log.info("git over SSH is off (SPACEHUB_SSH_PORT=0)")
        return None
    host_key = await to_thread.run_sync(load_host_key, settings.data_dir)
    connections: set[asyncssh.SSHServerConnection] = set()

    async def handle(process: asyncssh.SSHServerProcess) -> None:
        await serve_git(platform, process)

    acceptor = await asyncssh.create_server(
        lambda: _KeyAuth(platform, connections),
        settings.ssh_host,
        settings.ssh_port,
        server_host_keys=[host_key],
        process_factory=handle,
        encoding=None,
        allow_pty=False,
        agent_forwarding=False,
        x11_forwarding=False,
        allow_scp=False,
        login_timeout=60,
        keepalive_interval=60,
    )
    log.info(
        "git over SSH listens on %s:%d (ssh://git@%s:%d/spaces/OWNER/NAME), host key %s",
        settings.ssh_host,
        settings.ssh_port,
        settings.ssh_host,
        settings.ssh_port,
        host_key.get_fingerprint("sha256"),
    )
    return SshServer(acceptor, connections)


async def serve_git(platform: Platform, process: asyncssh.SSHServerProcess) -> None:
    """Run the one git service the client asked for, or refuse on stderr with status 1."""
    user_id = process.get_extra_info(USER_ID)
    command = process.command
    if command is None:
        name = process.get_extra_info("spacehub_user_name")
        _refuse(
            process,
            f"Hi {name}! You are signed in, but there is no shell here: use git, e.g. "
            f"git clone ssh://git@HOST:PORT/spaces/OWNER/NAME",
        )
        return
    try:
        request = parse_command(command)
        if request.service == LFS_AUTHENTICATE:
            answer = await to_thread.run_sync(lfs_credentials, platform, user_id, request)
            process.stdout.write(json.dumps(answer).encode() + b"\n")
            process.exit(0)
            return
        target = await to_thread.run_sync(resolve_target, platform, user_id, request)
    except SpacehubError as error:
        _refuse(process, error.message)
        return
    try:
        status = await _run_service(platform, target, request.service, process)
    except (BrokenPipeError, ConnectionError, asyncssh.Error):
        return  # the client went away: git has been stopped, nobody is left to tell
    except TimeoutError:
        _refuse(process, f"{request.service} took longer than {SERVICE_TIMEOUT} s: stopped")
        return
    except Exception:
        log.exception("git over SSH failed: %s for user %s", command, user_id)
        _refuse(process, "internal error")
        return
    process.exit(status)


def _refuse(process: asyncssh.SSHServerProcess, message: str) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionError, asyncssh.Error):
        process.stderr.write(f"ERROR: {message}\n".encode())
        process.exit(1)


async def _run_service(
    platform: Platform, target: GitTarget, service: str, process: asyncssh.SSHServerProcess
) -> int:
    """Pipe the client's stdin, stdout and stderr to `git upload-pack|receive-pack REPO`."""
    environment = {}
    protocol = process.env.get("GIT_PROTOCOL", "")
    if GIT_PROTOCOL.fullmatch(protocol):
        environment["GIT_PROTOCOL"] = protocol
    git = await start_git_service(
        platform.settings,
        target.space_id,
        service.removeprefix("git-"),
        str(target.repo),
        stderr=asyncio.subprocess.PIPE,
        **environment,
    )
    assert git.stdin is not None and git.stdout is not None and git.stderr is not None
    feeding = asyncio.create_task(_feed(process.stdin, git.stdin))
    try:
        async with asyncio.timeout(SERVICE_TIMEOUT):
            await asyncio.gather(
                _copy(git.stdout, process.stdout), _copy(git.stderr, process.stderr)
            )
            return await git.wait()
    finally:
        feeding.cancel()
        if git.returncode is None:
            git.kill()
            await git.wait()


async def _feed(source: asyncssh.SSHReader, git_stdin: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(CHUNK):
            git_stdin.write(chunk)
            await git_stdin.drain()
    except (BrokenPipeError, ConnectionResetError, asyncssh.Error):
        pass  # git has stopped reading (it answered, or refused the push): nothing to feed
    finally:
        git_stdin.close()


async def _copy(source: asyncio.StreamReader, destination: asyncssh.SSHWriter) -> None:
    while chunk := await source.read(CHUNK):
        destination.write(chunk)
        await destination.drain()
