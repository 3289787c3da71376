"""The Hub's write API for a space's repository: preupload, commit, branches and tags."""

from pathlib import Path

from anyio import to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session

from spacehub.platform.api.shapes import space_url
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.deps import CallerDep, PlatformDep, SessionDep, bearer_token
from spacehub.platform.git import hub_commits, writing
from spacehub.platform.git.repos import DEFAULT_BRANCH, repo_path
from spacehub.platform.pushes import build_new_head, find_space_row
from spacehub.platform.services import accounts, spaces
from spacehub.platform.services.accounts import Caller

router = APIRouter(prefix="/api/spaces/{owner}/{name}")


class UploadCandidate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: str
    size: int = 0


class Preupload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    files: list[UploadCandidate]


class NewBranch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    startingPoint: str | None = None


class NewTag(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tag: str
    message: str | None = None


@router.post("/preupload/{revision:path}")
def preupload(
    owner: str,
    name: str,
    revision: str,
    body: Preupload,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
) -> dict:
    """Every file goes in the commit itself ("regular"): LFS is decided when committing."""
    _author(session, caller, owner, name)
    repo = repo_path(platform.settings.repos_dir, owner, name)
    known = hub_commits.known_blobs(repo, revision, [file.path for file in body.files])
    return {
        "files": [
            {
                "path": file.path,
                "uploadMode": "regular",
                "shouldIgnore": False,
                **({"oid": known[file.path]} if file.path in known else {}),
            }
            for file in body.files
        ]
    }


@router.post("/commit/{revision:path}")
async def commit(
    owner: str,
    name: str,
    revision: str,
    request: Request,
    platform: PlatformDep,
    create_pr: bool = False,
) -> dict:
    # No database session is held while the body (up to ~100 MB of NDJSON) streams in.
    author = await to_thread.run_sync(_author_for_request, platform, request, owner, name)
    settings = platform.settings
    repo = repo_path(settings.repos_dir, owner, name)
    spool = await to_thread.run_sync(hub_commits.spool_dir, settings.data_dir)
    try:
        payload = await hub_commits.read_payload(request.stream(), Path(spool.name))
        result = await to_thread.run_sync(
            hub_commits.make_commit, repo, settings.data_dir, revision, payload, author, create_pr
        )
    finally:
        await to_thread.run_sync(spool.cleanup)
    url = space_url(settings, owner, name)
    answer = {
        "success": True,
        "commitOid": result.commit,
        "commitUrl": f"{url}/commit/{result.commit}",
        "hookOutput": "",
    }
    if result.pull_request is not None:
        answer["pullRequestUrl"] = f"{url}/discussions/{result.pull_request}"
    elif result.ref == f"refs/heads/{DEFAULT_BRANCH}":
        space_row_id = await to_thread.run_sync(find_space_row, platform, owner, name)
        if space_row_id is not None:
            answer["hookOutput"] = await build_new_head(platform, space_row_id)
    return answer


@router.post("/branch/{branch:path}")
def create_branch(
    owner: str,
    name: str,
    branch: str,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
    body: NewBranch | None = None,
) -> dict:
    _author(session, caller, owner, name)
    start = body.startingPoint if body and body.startingPoint else DEFAULT_BRANCH
    repo = repo_path(platform.settings.repos_dir, owner, name)
    writing.create_branch(repo, branch, start)
    return {}


@router.delete("/branch/{branch:path}")
def delete_branch(
    owner: str,
    name: str,
    branch: str,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
) -> dict:
    _author(session, caller, owner, name)
    writing.delete_branch(repo_path(platform.settings.repos_dir, owner, name), branch)
    return {}


@router.post("/tag/{revision:path}")
def create_tag(
    owner: str,
    name: str,
    revision: str,
    body: NewTag,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
) -> dict:
    author = _author(session, caller, owner, name)
    repo = repo_path(platform.settings.repos_dir, owner, name)
    writing.create_tag(repo, body.tag, revision, body.message, author)
    return {}


@router.delete("/tag/{tag:path}")
def delete_tag(
    owner: str,
    name: str,
    tag: str,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
) -> dict:
    _author(session, caller, owner, name)
    writing.delete_tag(repo_path(platform.settings.repos_dir, owner, name), tag)
    return {}


def _author(session: Session, caller: Caller, owner: str, name: str) -> writing.Author:
    """The caller as a commit author, once they are known to may write to the space."""
    space = spaces.visible_space(session, caller, owner, name)
    accounts.require_write(session, caller, spaces.owner_of(session, space))
    assert caller.user is not None
    return writing.Author.user(caller.user.name)


def _author_for_request(
    platform: Platform, request: Request, owner: str, name: str
) -> writing.Author:
    with session_scope(platform.engine) as session:
        caller = accounts.caller_for_token(session, bearer_token(request))
        return _author(session, caller, owner, name)
