"""``saga-journey sagas|journeys|events``: find, inspect, follow and repair sagas.

Against a running gateway (``--url``/``SAGA_JOURNEY_URL``, ``--token``/``SAGA_JOURNEY_TOKEN``)
through ``saga_journey.client``; ``sagas list/show`` and ``journeys list/show`` also read a
local ``--data-dir`` read-only, beside a server that is writing it. Exit codes: 0 done; 1 a
request failed (or some of a bulk action, or the confirmation was declined); 2 bad usage.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import click

from . import cli_render as render
from .errors import InvalidInputError, NotFoundError, SagaError
from .model import SAGA_STATES

DEFAULT_URL = "http://127.0.0.1:8080"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
CONTEXT = {"show_default": True, "help_option_names": ["-h", "--help"], "max_content_width": 100}


def version_string() -> str:
    try:
        return package_version("saga-journey")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``2d``, ``1w`` as seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration such as 90s, 15m, 1h, 2d or 1w")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


@dataclass(frozen=True)
class Filters:
    """The list/events filters of the HTTP contract, checked again on every saga the CLI acts
    on, so a gateway that ignores one never widens a bulk action."""

    status: str | None = None
    parked: bool | None = None
    journey_type: str | None = None
    journey_id: str | None = None
    user_id: str | None = None
    updated_before: float | None = None

    def any(self) -> bool:
        return any(v is not None for v in vars(self).values())

    def query(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}

    def matches(self, v: Mapping[str, Any]) -> bool:
        return (
            (self.status is None or v.get("status") == self.status)
            and (self.parked is None or bool(v.get("parked")) == self.parked)
            and (self.journey_type is None or v.get("journey_type") == self.journey_type)
            and (self.journey_id is None or v.get("journey_id") == self.journey_id)
            and (self.user_id is None or v.get("user_id") == self.user_id)
            and (self.updated_before is None or float(v.get("updated_at") or 0) < self.updated_before)
        )


@dataclass
class Conn:
    url: str
    token: str | None
    _client: Any = field(default=None, repr=False)

    def client(self) -> Any:
        if self._client is None:
            from saga_journey.client import SagaClient

            self._client = SagaClient(self.url, self.token or "")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--status", type=click.Choice(SAGA_STATES), default=None, help="only sagas in this status"),
        click.option("--parked/--not-parked", default=None,
                     help="only sagas parked for an operator (compensation gave up) / only others"),
        click.option("--journey-type", default=None, help="only sagas of this journey type (e.g. order_processing)"),
        click.option("--journey-id", default=None, help="only sagas of this journey"),
        click.option("--user", "user_id", default=None, help="only sagas of this user id"),
        click.option("--older-than", default=None, metavar="DURATION",
                     help="only sagas not updated for this long: 90s, 15m, 1h, 2d, 1w"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _filters(status: str | None, parked: bool | None, journey_type: str | None, journey_id: str | None,
             user_id: str | None, older_than: str | None) -> Filters:
    before = time.time() - parse_duration(older_than) if older_than else None
    return Filters(status, parked, journey_type, journey_id, user_id, before)


def _remember_store(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    ctx.meta["saga_journey.store"] = value


def local_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--tenant", default="default", help="tenant whose sagas to read (with --data-dir/--store)")(fn)
    fn = click.option(
        "--store", default=None, metavar="URL", expose_value=False, callback=_remember_store,
        help="read this store (read-only), e.g. lmdb:./data, instead of the gateway",
    )(fn)
    return click.option(
        "--data-dir", default=None, type=click.Path(file_okay=False),
        help="read this local data folder (read-only; safe while the server runs) instead of the gateway",
    )(fn)


def _remember_gateway(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[f"saga_journey.{param.name}"] = value


def gateway_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--url``/``--token`` after the command too (``sagas list --url U``), as the store
    commands take them; they win over the group's (``saga-journey sagas --url U list``)."""
    fn = click.option("--token", default=None, expose_value=False, callback=_remember_gateway,
                      help="API key (bearer token) for the gateway (default: the group's / SAGA_JOURNEY_TOKEN)")(fn)
    return click.option("--url", default=None, expose_value=False, callback=_remember_gateway,
                        help="the gateway's base URL (default: the group's / SAGA_JOURNEY_URL)")(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="machine-readable JSON instead of tables")(fn)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, separators=(",", ":"), default=str))


# --- sources: the gateway or a local folder ---------------------------------------------


class LocalSource:
    """Reads of a data folder through the read-only ``Queries`` port (for LMDB: readers
    beside the writer)."""

    def __init__(self, store_url: str, tenant: str) -> None:
        from saga_journey.persistence.factory import backend_for

        self.store = backend_for(store_url).open_read_only()
        self.tenant = tenant

    def close(self) -> None:
        self.store.close()

    def list_sagas(self, f: Filters, limit: int, oldest: bool) -> list[dict[str, Any]]:
        """The gateway's listing (``queries.find_views``: the same index, order and cursors),
        over the folder read-only."""
        from saga_journey.persistence.query import Query

        from .queries import find_views

        query = Query(self.tenant, f.status, f.parked, f.journey_type, f.journey_id, f.user_id,
                      None, f.updated_before, "oldest" if oldest else "newest")
        out: list[dict[str, Any]] = []
        cursor = None
        while len(out) < limit:
            views, cursor = find_views(self.store, query, min(1000, limit), cursor)
            out.extend(v for v in views if f.matches(v))
            if cursor is None:
                break
        return out[:limit]

    def _key(self, local: str) -> str:
        from saga_journey.persistence.keys import scoped_key

        return scoped_key(self.tenant, local)

    def saga(self, saga_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from saga_journey.actors.directory import view_of

        snap = self.store.load_saga(self._key(saga_id))
        if snap is None:
            raise NotFoundError(f"saga {saga_id} not found in tenant {self.tenant}")
        return view_of(snap, self.store), self.store.load_history(self._key(saga_id))

    def list_journeys(self) -> list[dict[str, Any]]:
        return self.store.list_journeys(self.tenant)

    def journey(self, journey_id: str, version: int | None) -> dict[str, Any]:
        found = self.store.load_journey(self._key(journey_id), version)
        if found is None:
            raise NotFoundError(f"journey {journey_id} not found in tenant {self.tenant}")
        return found


class RemoteSource:
    def __init__(self, conn: Conn) -> None:
        self.client = conn.client()

    def close(self) -> None:
        pass

    def iter_sagas(self, f: Filters) -> Iterator[dict[str, Any]]:
        for view in self.client.iter_sagas(page_size=1000, **f.query()):
            if f.matches(view):
                yield view

    def list_sagas(self, f: Filters, limit: int, oldest: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while len(out) < limit:
            page = self.client.list_sagas(limit=min(1000, limit), cursor=cursor,
                                          order="oldest" if oldest else None, **f.query())
            out.extend(v for v in page["sagas"] if f.matches(v))
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return out[:limit]

    def saga(self, saga_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return self.client.get_saga_status(saga_id), self.client.get_saga_execution_history(saga_id)

    def list_journeys(self) -> list[dict[str, Any]]:
        return self.client.list_journeys()

    def journey(self, journey_id: str, version: int | None) -> dict[str, Any]:
        return self.client.get_journey(journey_id, version=version)


def _conn(ctx: click.Context) -> Conn:
    conn = ctx.find_object(Conn)
    if conn is None:  # the group callback always makes one
        raise click.UsageError("no gateway connection (the sagas/journeys/events group sets it up)")
    url, token = ctx.meta.get("saga_journey.url"), ctx.meta.get("saga_journey.token")
    if url is None and token is None:
        return conn
    own = ctx.meta.get("saga_journey.conn")
    if own is None:  # the command's own --url/--token: one connection for the command
        own = ctx.meta["saga_journey.conn"] = Conn(url or conn.url, token or conn.token)
        ctx.call_on_close(own.close)
    return own


def _source(ctx: click.Context, data_dir: str | None, tenant: str) -> LocalSource | RemoteSource:
    from saga_journey.persistence.factory import data_dir_url

    store = ctx.meta.get("saga_journey.store")
    if store and data_dir:
        raise click.UsageError("give --data-dir or --store, not both")
    url = store or (data_dir_url(data_dir) if data_dir else None)
    source = LocalSource(url, tenant) if url else RemoteSource(_conn(ctx))
    ctx.call_on_close(source.close)
    return source


# --- the command tree ---------------------------------------------------------------------


@click.group(context_settings=CONTEXT)
@click.option("--url", envvar="SAGA_JOURNEY_URL", default=DEFAULT_URL, show_envvar=True,
              help="the gateway's base URL")
@click.option("--token", envvar="SAGA_JOURNEY_TOKEN", default=None, show_envvar=True,
              help="API key (bearer token); not needed against --insecure-dev")
@click.version_option(version_string(), "--version", prog_name="saga-journey")
@click.pass_context
def cli(ctx: click.Context, url: str, token: str | None) -> None:
    """Operate saga-journey: find, inspect, follow and repair sagas."""
    conn = Conn(url, token)
    ctx.obj = conn
    ctx.call_on_close(conn.close)


@cli.group(context_settings=CONTEXT)
def sagas() -> None:
    """List, inspect, follow, abort and repair sagas."""


@sagas.command("list")
@filter_options
@click.option("--limit", default=20, type=click.IntRange(1, 100_000), help="at most this many sagas")
@click.option("--oldest", is_flag=True, help="oldest first (default: newest first, by last update)")
@local_options
@gateway_options
@json_option
@click.pass_context
def sagas_list(ctx: click.Context, status: str | None, parked: bool | None, journey_type: str | None,
               journey_id: str | None, user_id: str | None, older_than: str | None, limit: int,
               oldest: bool, data_dir: str | None, tenant: str, as_json: bool) -> None:
    """Sagas matching the filters, newest first."""
    f = _filters(status, parked, journey_type, journey_id, user_id, older_than)
    views = _source(ctx, data_dir, tenant).list_sagas(f, limit, oldest)
    if as_json:
        _echo_json(views)
        return
    out = render.console()
    out.print(render.sagas_table(views))
    out.print(f"{len(views)} saga(s)" + (f" (limit {limit} reached)" if len(views) == limit else ""),
              style="dim")


@sagas.command("show")
@click.argument("saga_id")
@local_options
@gateway_options
@json_option
@click.pass_context
def sagas_show(ctx: click.Context, saga_id: str, data_dir: str | None, tenant: str, as_json: bool) -> None:
    """A saga's status and its timeline: a forward lane and a compensation lane."""
    view, history = _source(ctx, data_dir, tenant).saga(saga_id)
    if as_json:
        _echo_json({"saga": view, "history": history})
        return
    out = render.console()
    out.print(render.saga_card(view))
    out.print()
    out.print(render.timeline(history))


def _print_event(data: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        _echo_json(data)
    else:
        render.console().print(render.event_line(data))


@sagas.command("watch")
@click.argument("saga_id")
@click.option("--forever", is_flag=True, help="keep following after the saga finishes")
@gateway_options
@json_option
@click.pass_context
def sagas_watch(ctx: click.Context, saga_id: str, forever: bool, as_json: bool) -> None:
    """Print a saga's history, then each transition as it happens, until it finishes.

    One JSON object per line with --json. Uses the gateway's event stream; a gateway without
    one is followed by long-polling (GET /v1/sagas/ID?wait=).
    """
    client = _conn(ctx).client()
    start = client.get_saga_status(saga_id)  # a missing saga is an error before any stream
    try:
        for event in client.saga_events(saga_id):
            data = dict(event.data or {})
            _print_event(data, as_json)
            status = data.get("status") or data.get("status_after")
            if not forever and status in ("COMPLETED", "FAILED") and int(data.get("seq") or 0) >= start["version"]:
                return
    except NotFoundError:
        _watch_by_polling(client, saga_id, forever, as_json)


def _watch_by_polling(client: Any, saga_id: str, forever: bool, as_json: bool) -> None:
    seen = 0
    while True:
        for entry in client.get_saga_execution_history(saga_id, after_seq=seen):
            seen = int(entry["seq"])
            _print_event({"saga_id": saga_id, "event": entry["type"], **entry, "status": entry.get("status_after")},
                         as_json)
        status = client.wait_for_saga(saga_id, version=seen, timeout=60, return_on_timeout=True)
        if not forever and status["status"] in ("COMPLETED", "FAILED") and status["version"] <= seen:
            return


@cli.command("events", context_settings=CONTEXT)
@filter_options
@click.option("--saga-id", "saga_ids", multiple=True, help="only this saga (repeatable)")
@click.option("--last-event-id", default=None, help="resume after this event id (default: from now)")
@gateway_options
@json_option
@click.pass_context
def events(ctx: click.Context, status: str | None, parked: bool | None, journey_type: str | None,
           journey_id: str | None, user_id: str | None, older_than: str | None,
           saga_ids: tuple[str, ...], last_event_id: str | None, as_json: bool) -> None:
    """Follow transitions of the matching sagas live (Ctrl-C to stop); --json: one per line."""
    f = _filters(status, parked, journey_type, journey_id, user_id, older_than)
    query = f.query()
    if "updated_before" in query:
        query["updated_before"] = f"{query['updated_before']:.3f}"
    client = _conn(ctx).client()
    try:
        for event in client.events(saga_ids=saga_ids, last_event_id=last_event_id, **query):
            _print_event(dict(event.data or {}), as_json)
    except KeyboardInterrupt:
        pass


# --- actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    verb: str  # for the prompt: "abort", "retry the parked compensation of", ...
    implied: Filters  # what a saga must be for the action to apply (checked on each saga)
    run: Callable[[Any, Mapping[str, Any], str, str | None], dict[str, Any]]

    def query(self) -> Filters:
        """The part of ``implied`` asked of the gateway: the status (every gateway filters it)."""
        return Filters(status=self.implied.status)


ACTIONS = {
    "abort": Action("abort", Filters(status="IN_PROGRESS"),
                    lambda c, v, reason, _: c.compensate_saga(v["saga_id"], reason)),
    "retry": Action("retry the parked compensation of", Filters(status="FAILED", parked=True),
                    lambda c, v, reason, _: c.retry_compensation(v["saga_id"], reason)),
    "skip": Action("skip the failed compensation of", Filters(status="FAILED", parked=True),
                   lambda c, v, reason, m: c.skip_compensation(
                       v["saga_id"], m or v.get("failed_compensation") or "", reason)),
}


def _merge(f: Filters, implied: Filters) -> Filters:
    merged = {k: v for k, v in vars(implied).items() if v is not None}
    for k, v in vars(f).items():
        if v is not None:
            if k in merged and merged[k] != v:
                raise click.UsageError(f"this action applies only to sagas with {k}={merged[k]!r}")
            merged[k] = v
    return Filters(**merged)


def _act(ctx: click.Context, name: str, saga_id: str | None, reason: str, milestone: str | None,
         f: Filters, every: bool, yes: bool, as_json: bool) -> None:
    action = ACTIONS[name]
    client = _conn(ctx).client()
    if saga_id is not None:
        if f.any() or every:
            raise click.UsageError("give a SAGA_ID or filters, not both")
        view = action.run(client, {"saga_id": saga_id, **_failed(client, name, saga_id, milestone)}, reason, milestone)
        _echo_json(view) if as_json else render.console().print(
            f"{view['saga_id']}: ", render.status_text(view), f" (version {view.get('version')})")
        return
    if not (f.any() or every):
        raise click.UsageError("give a SAGA_ID, filters (e.g. --parked --journey-type T), or --all")
    guard = _merge(f, action.implied)
    selected = [v for v in RemoteSource(_conn(ctx)).iter_sagas(_merge(f, action.query()))
                if guard.matches(v)]
    err = render.console(stderr=True)
    if not selected:
        err.print("no saga matches; nothing to do")
        return
    err.print(render.sagas_table(selected[:10]))
    if len(selected) > 10:
        err.print(f"... and {len(selected) - 10} more", style="dim")
    if not yes and not click.confirm(f"{action.verb} {len(selected)} saga(s)?", err=True):
        err.print("declined; nothing changed")
        ctx.exit(1)
    failed = _run_bulk(client, action, selected, reason, milestone, as_json, err)
    err.print(f"{len(selected) - failed} done, {failed} failed")
    if failed:
        ctx.exit(1)


def _failed(client: Any, name: str, saga_id: str, milestone: str | None) -> dict[str, Any]:
    """For ``skip`` without --milestone: the milestone whose compensation is parked."""
    if name != "skip" or milestone:
        return {}
    view = client.get_saga_status(saga_id)
    if not view.get("failed_compensation"):
        raise InvalidInputError(f"saga {saga_id} is not parked on a failed compensation; nothing to skip")
    return {"failed_compensation": view["failed_compensation"]}


def _run_bulk(client: Any, action: Action, selected: list[dict[str, Any]], reason: str,
              milestone: str | None, as_json: bool, err: Any) -> int:
    from .cli_progress import bar

    failed = 0
    with bar(as_json=as_json, console=err) as progress:
        task = progress.add_task(action.verb.split()[0], total=len(selected))
        for view in selected:
            try:
                after = action.run(client, view, reason, milestone)
                outcome = {"saga_id": view["saga_id"], "ok": True, "status": after.get("status"),
                           "parked": after.get("parked")}
            except SagaError as exc:
                failed += 1
                outcome = {"saga_id": view["saga_id"], "ok": False, "error": exc.code, "message": exc.message}
                if not as_json:
                    progress.console.print(f"{view['saga_id']}: {exc.code}: {exc.message}", style="red")
            if as_json:
                _echo_json(outcome)
            progress.advance(task)
    return failed


def _action_command(name: str, doc: str, skip: bool = False) -> None:
    @click.argument("saga_id", required=False)
    @click.option("--reason", required=True, help="why (recorded in the saga's audit trail)")
    @filter_options
    @click.option("--all", "every", is_flag=True, help="every saga the action applies to (no filter)")
    @click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation of a bulk action")
    @gateway_options
    @json_option
    @click.pass_context
    def command(ctx: click.Context, saga_id: str | None, reason: str, status: str | None, parked: bool | None,
                journey_type: str | None, journey_id: str | None, user_id: str | None,
                older_than: str | None, every: bool, yes: bool, as_json: bool, milestone: str | None = None) -> None:
        f = _filters(status, parked, journey_type, journey_id, user_id, older_than)
        _act(ctx, name, saga_id, reason, milestone, f, every, yes, as_json)

    command.__doc__ = doc
    if skip:
        command = click.option("--milestone", default=None,
                               help="milestone whose compensation was done by hand (default: the parked one)")(command)
    sagas.command(name, context_settings=CONTEXT)(command)


_action_command("abort", "Abort IN_PROGRESS sagas: their completed milestones are compensated in reverse "
                "order. One SAGA_ID, or in bulk by filter (with a confirmation).")
_action_command("retry", "Resume parked rollbacks at the compensation that failed, with a fresh budget. "
                "One SAGA_ID, or in bulk by filter: sagas retry --journey-type order_processing --reason R")
_action_command("skip", "Record that a parked saga's failed compensation was done by hand, and continue "
                "its rollback. One SAGA_ID, or in bulk by filter.", skip=True)


@cli.group(context_settings=CONTEXT)
def journeys() -> None:
    """List and inspect designed journeys."""


@journeys.command("list")
@local_options
@gateway_options
@json_option
@click.pass_context
def journeys_list(ctx: click.Context, data_dir: str | None, tenant: str, as_json: bool) -> None:
    """The latest version of every journey."""
    found = _source(ctx, data_dir, tenant).list_journeys()
    if as_json:
        _echo_json(found)
        return
    render.console().print(render.journeys_table(found))


@journeys.command("show")
@click.argument("journey_id")
@click.option("--version", "journey_version", type=click.IntRange(1), default=None, help="this version (default: latest)")
@local_options
@gateway_options
@json_option
@click.pass_context
def journeys_show(ctx: click.Context, journey_id: str, journey_version: int | None, data_dir: str | None,
                  tenant: str, as_json: bool) -> None:
    """A journey's milestones, with compensation handlers, timeouts and retry policies."""
    journey = _source(ctx, data_dir, tenant).journey(journey_id, journey_version)
    if as_json:
        _echo_json(journey)
        return
    from rich.table import Table

    out = render.console()
    out.print(f"[bold]{journey['journey_id']}[/bold] v{journey['version']} ({journey['journey_type']}), "
              f"created {render.iso(journey.get('created_at'))}")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("#", "MILESTONE", "COMPENSATION HANDLER", "TIMEOUT", "RETRY"):
        table.add_column(name)
    for i, m in enumerate(journey.get("milestones", []), 1):
        table.add_row(str(i), str(m.get("id")), str(m.get("compensation_handler") or "-"),
                      f"{m['timeout_s']}s" if m.get("timeout_s") else "-", _policy(m.get("retry")))
    out.print(table)


def _policy(p: Mapping[str, Any] | None) -> str:
    if not p:
        return "-"
    return (f"{p.get('max_attempts')} attempts, {p.get('initial_delay_s')}s x{p.get('backoff')} "
            f"up to {p.get('max_delay_s')}s")


CLICK_COMMANDS = frozenset(cli.commands)


def run(argv: list[str]) -> int:
    """Run the click commands; SagaError becomes a one-line message (exit 2 for bad input, else 1)."""
    try:
        # standalone_mode=False: ctx.exit(n) comes back as the return value
        code = cli.main(args=argv, prog_name="saga-journey", standalone_mode=False)
    except click.exceptions.Abort:
        print("saga-journey: aborted", file=sys.stderr)
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SagaError as exc:
        print(f"saga-journey: {exc.message}", file=sys.stderr)
        return 2 if isinstance(exc, InvalidInputError) else 1
    return code if isinstance(code, int) else 0
