"""`spacehub users|orgs|tokens`: accounts, against the data dir's database or a running platform.

Both ways go through the admin API's route functions: with `--url` over HTTP (an admin token in
`--token` or SPACEHUB_TOKEN), else called in this process on the data dir's database, as the
operator of the machine (a platform admin who is nobody's user).
"""

import argparse
import getpass
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlmodel import Session

    from spacehub.platform.settings import Settings

HTTP_TIMEOUT_SECONDS = 30
ROLES = ("read", "write", "admin")


def add_parsers(commands: "argparse._SubParsersAction", where: argparse.ArgumentParser) -> None:
    """The users, orgs and tokens commands; `where` holds the options that pick the database."""
    users = _group(commands, "users", "people who sign in, push and own spaces", where)
    add = _action(users, "add", "create a user (asks for a password)", where)
    add.add_argument("name")
    add.add_argument("--fullname", default="")
    add.add_argument("--admin", action="store_true", help="a platform admin")
    _password_options(add, allow_none=True)
    _action(users, "list", "every user", where)
    for verb, what in (("disable", "stop"), ("enable", "restore")):
        action = _action(users, verb, f"{what} the user's tokens, keys and password", where)
        action.add_argument("name")
    password = _action(users, "set-password", "give the user a new password", where)
    password.add_argument("name")
    _password_options(password, allow_none=False)

    orgs = _group(commands, "orgs", "organisations: spaces a team owns together", where)
    add = _action(orgs, "add", "create an organisation", where)
    add.add_argument("name")
    add.add_argument("--fullname", default="")
    _action(orgs, "list", "every organisation and its members", where)
    for verb, what in (("add-member", "add USER to ORG"), ("set-role", "change USER's role")):
        member = _action(orgs, verb, what, where)
        member.add_argument("org")
        member.add_argument("user")
        member.add_argument(
            "--role",
            default="write" if verb == "add-member" else argparse.SUPPRESS,
            required=verb == "set-role",
            help="read: sees private spaces; write: also pushes and creates; admin: also "
            "manages members (default: write)",
        )
    member = _action(orgs, "remove-member", "remove USER from ORG", where)
    member.add_argument("org")
    member.add_argument("user")

    tokens = _group(commands, "tokens", "access tokens (git's password, the API's bearer)", where)
    create = _action(tokens, "create", "a new token for USER, printed this once", where)
    create.add_argument("user")
    create.add_argument("--name", default="", help="what the token is for")
    create.add_argument("--role", default="read", help="read or write (default: read)")
    create.add_argument("--expires-in-days", type=float, help="default: never expires")
    listing = _action(tokens, "list", "tokens of USER, or everyone's (never their values)", where)
    listing.add_argument("user", nargs="?")
    revoke = _action(tokens, "revoke", "revoke the token with this ID", where)
    revoke.add_argument("id", type=int)


def _group(
    commands: "argparse._SubParsersAction", name: str, text: str, where: argparse.ArgumentParser
) -> "argparse._SubParsersAction":
    parser = commands.add_parser(name, help=text, parents=[where])
    return parser.add_subparsers(dest="action", required=True)


def _action(
    actions: "argparse._SubParsersAction", name: str, text: str, where: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    return actions.add_parser(name, help=text, parents=[where])


def _password_options(parser: argparse.ArgumentParser, allow_none: bool) -> None:
    # Never a plain argument: it would be in the shell history and `ps` for everyone to read.
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    if allow_none:
        parser.add_argument(
            "--no-password", action="store_true", help="token sign-in only, no password"
        )


def manage_accounts(settings: "Settings", args: argparse.Namespace) -> int:
    """Run one `users|orgs|tokens` action; print what it did, or why not (exit 1)."""
    command = f"spacehub {args.command}"
    try:
        body = _body(args)
        if getattr(args, "url", None):
            result = _run_remote(args, body)
        else:
            result = _run_local(settings, args, body)
    except CommandError as error:
        print(f"{command}: {error}", file=sys.stderr)
        return 1
    _print(args, result)
    return 0


class CommandError(Exception):
    """What went wrong, in words for the person at the terminal."""


def _body(args: argparse.Namespace) -> dict[str, Any] | None:
    """The admin API's request body for the action."""
    match args.command, args.action:
        case "users", "add":
            password = None if args.no_password else _password(args)
            return {
                "name": args.name,
                "fullname": args.fullname,
                "isAdmin": args.admin,
                "password": password,
            }
        case "users", "disable" | "enable":
            return {"disabled": args.action == "disable"}
        case "users", "set-password":
            return {"password": _password(args)}
        case "orgs", "add":
            return {"name": args.name, "fullname": args.fullname}
        case "orgs", "add-member":
            return {"user": args.user, "role": args.role}
        case "orgs", "set-role":
            return {"role": args.role}
        case "tokens", "create":
            expires = None
            if args.expires_in_days is not None:
                moment = datetime.now(UTC) + timedelta(days=args.expires_in_days)
                expires = moment.isoformat()
            return {"displayName": args.name, "role": args.role, "expiresAt": expires}
    return None


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat it: ") != first:
        raise CommandError("the two passwords differ")
    return first


# The admin API's answers, over HTTP or from its route functions called in this process.


def _route(args: argparse.Namespace) -> tuple[str, str]:
    """The admin API's method and path for the action."""
    quote = urllib.parse.quote
    match args.command, args.action:
        case "users", "add":
            return "POST", "/users"
        case "users", "list":
            return "GET", "/users"
        case "users", _:
            return "PATCH", f"/users/{quote(args.name, safe='')}"
        case "orgs", "add":
            return "POST", "/orgs"
        case "orgs", "list":
            return "GET", "/orgs"
        case "orgs", "add-member":
            return "POST", f"/orgs/{quote(args.org, safe='')}/members"
        case "orgs", "set-role":
            return "PUT", f"/orgs/{quote(args.org, safe='')}/members/{quote(args.user, safe='')}"
        case "orgs", "remove-member":
            return "DELETE", f"/orgs/{quote(args.org, safe='')}/members/{quote(args.user, safe='')}"
        case "tokens", "create":
            return "POST", f"/users/{quote(args.user, safe='')}/tokens"
        case "tokens", "list":
            query = f"?{urllib.parse.urlencode({'user': args.user})}" if args.user else ""
            return "GET", f"/tokens{query}"
    return "DELETE", f"/tokens/{args.id}"


def _run_remote(args: argparse.Namespace, body: dict[str, Any] | None) -> Any:
    token = getattr(args, "token", None) or os.environ.get("SPACEHUB_TOKEN")
    if not token:
        raise CommandError("give an admin token with --token or SPACEHUB_TOKEN")
    if urllib.parse.urlsplit(args.url).scheme not in ("http", "https"):
        raise CommandError(f"--url must be an http:// or https:// address, not {args.url!r}")
    method, path = _route(args)
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        f"{args.url.rstrip('/')}/api/admin{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as answer:  # noqa: S310
            text = answer.read().decode()
    except urllib.error.HTTPError as error:
        raise CommandError(_error_message(error)) from error
    except (urllib.error.URLError, OSError) as error:
        raise CommandError(f"cannot reach {args.url}: {error}") from error
    return json.loads(text) if text else None


def _error_message(error: urllib.error.HTTPError) -> str:
    text = error.read().decode(errors="replace")
    try:
        return str(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {error.code}: {text[:500]}"


def _run_local(settings: "Settings", args: argparse.Namespace, body: dict[str, Any] | None) -> Any:
    from pydantic import ValidationError

    from spacehub.core.errors import SpacehubError

    try:
        with data_dir_session(settings) as session:
            route, arguments = _local_route(args, body)
            answer = route(session=session, **arguments)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise CommandError(f"{where}: {first['msg']}") from error
    except (SpacehubError, OSError) as error:
        raise CommandError(getattr(error, "message", str(error))) from error
    if isinstance(answer, list):
        return [item.model_dump(mode="json") for item in answer]
    return answer.model_dump(mode="json") if hasattr(answer, "model_dump") else None


def _local_route(
    args: argparse.Namespace, body: dict[str, Any] | None
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The admin route function for the action and its arguments, the operator as the caller."""
    from spacehub.platform.api import admin
    from spacehub.platform.models import TokenRole, User
    from spacehub.platform.services.accounts import Caller

    operator = Caller(user=User(name="spacehub-cli", is_admin=True), role=TokenRole.WRITE)
    arguments: dict[str, Any] = {"caller": operator}
    match args.command, args.action:
        case "users", "add":
            return admin.create_user, {**arguments, "body": admin.NewUser(**body or {})}
        case "users", "list":
            return admin.list_users, arguments
        case "users", _:
            change = admin.UserChange(**body or {})
            return admin.update_user, {**arguments, "name": args.name, "body": change}
        case "orgs", "add":
            return admin.create_org, {**arguments, "body": admin.NewOrg(**body or {})}
        case "orgs", "list":
            return admin.list_orgs, arguments
        case "orgs", "add-member":
            member = admin.NewMember(**body or {})
            return admin.add_member, {**arguments, "name": args.org, "body": member}
        case "orgs", "set-role":
            change = admin.RoleChange(**body or {})
            member = {"name": args.org, "user": args.user, "body": change}
            return admin.set_member_role, {**arguments, **member}
        case "orgs", "remove-member":
            return admin.remove_member, {**arguments, "name": args.org, "user": args.user}
        case "tokens", "create":
            new = admin.NewToken(**body or {})
            return admin.create_token, {**arguments, "name": args.user, "body": new}
        case "tokens", "list":
            return admin.list_tokens, {**arguments, "user": args.user}
    return admin.revoke_token, {**arguments, "token_id": args.id}


@contextmanager
def data_dir_session(settings: "Settings") -> Iterator["Session"]:
    """A session on the data dir's database, migrated first; what every offline command uses."""
    import logging

    from spacehub.platform.db import make_engine, migrate, session_scope

    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
        with session_scope(engine) as session:
            yield session
    finally:
        engine.dispose()


def _print(args: argparse.Namespace, result: Any) -> None:
    match args.command, args.action:
        case "users", "list":
            for user in result:
                flags = [
                    flag
                    for flag, on in (
                        ("admin", user["isAdmin"]),
                        ("disabled", user["disabled"]),
                        ("no password", not user["hasPassword"]),
                    )
                    if on
                ]
                print(f"{user['name']}\t{user['fullname']}\t{', '.join(flags)}")
        case "users", _:
            state = "disabled" if result["disabled"] else "enabled"
            admin = ", admin" if result["isAdmin"] else ""
            print(f"{args.action}: {result['name']} ({state}{admin})")
        case "orgs", "list":
            for org in result:
                people = ", ".join(f"{m['name']} ({m['role']})" for m in org["members"])
                print(f"{org['name']}\t{org['fullname']}\t{people or 'no members'}")
        case "orgs", _:
            people = ", ".join(f"{m['name']} ({m['role']})" for m in result["members"])
            print(f"{result['name']}: {people or 'no members'}")
        case "tokens", "create":
            print(result["token"])
            print(
                f"token {result['id']} for {result['user']} ({result['role']}): shown this once, "
                "keep it now",
                file=sys.stderr,
            )
        case "tokens", "list":
            for token in result:
                print(
                    f"{token['id']}\t{token['user']}\t{token['role']}\t{token['displayName']}\t"
                    f"expires: {token['expiresAt'] or 'never'}\t"
                    f"last used: {token['lastUsedAt'] or 'never'}"
                )
        case "tokens", "revoke":
            print(f"revoked token {args.id}")


def where_options() -> argparse.ArgumentParser:
    """--data-dir, or --url and --token: which platform's accounts a command changes."""
    where = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an action's parser must not reset an option given before the action.
    where.add_argument("--data-dir", type=_path, default=argparse.SUPPRESS)
    where.add_argument(
        "--url", default=argparse.SUPPRESS, help="a running platform: go through its admin API"
    )
    where.add_argument(
        "--token", default=argparse.SUPPRESS, help="an admin token for --url (or SPACEHUB_TOKEN)"
    )
    return where


def _path(value: str) -> Any:
    from pathlib import Path

    return Path(value)
