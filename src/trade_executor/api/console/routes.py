"""The console's routes under /console, served by the service's HTTP app (api/app.py).

GET pages are read-only and open to anyone who can reach HTTP_HOST:HTTP_PORT (like /health);
each page has a `/fragment` twin the page's script fetches every REFRESH_SECONDS to replace its
live part. POSTs need a logged-in session (auth.py), its CSRF token and the console's own
origin; each action answers with a redirect back to the page (so a reload never repeats it)
carrying what the service did, shown once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from trade_executor import __version__
from trade_executor.api.console import actions, auth, formatting, views
from trade_executor.api.console.views import NotReady
from trade_executor.api.gateway import Gateway
from trade_executor.config.sources import Settings
from trade_executor.observability.logging import get_logger, log_repeated
from trade_executor.store.lookup import ExecutionLookupError, IdSyntaxError, parse_id

log = get_logger("trade_executor.console")

REFRESH_SECONDS = 3
MAX_FORM = 16 * 1024
STATIC = Path(__file__).with_name("static")


def console_routes(settings: Settings, gateway: Gateway) -> list[BaseRoute]:
    console = Console(settings, gateway)
    return [
        Route("/console", console.overview, methods=["GET"]),
        Route("/console/fragment", console.overview_fragment, methods=["GET"]),
        Route("/console/executions/{id}", console.execution, methods=["GET"]),
        Route("/console/executions/{id}/fragment", console.execution_fragment, methods=["GET"]),
        Route("/console/login", console.login_form, methods=["GET"]),
        Route("/console/login", console.login, methods=["POST"]),
        Route("/console/logout", console.logout, methods=["POST"]),
        Route("/console/actions/{action}", console.act, methods=["POST"]),
        Mount("/console/static", app=StaticFiles(directory=STATIC), name="console-static"),
    ]


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("trade_executor.api.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(formatting.FILTERS)
    return env


class Console:
    def __init__(self, settings: Settings, gateway: Gateway) -> None:
        self._settings = settings
        self._gateway = gateway
        self._sessions = auth.SessionBook()
        self._env = _environment()

    # -- helpers --------------------------------------------------------------------------------

    def _token(self) -> str | None:
        token = self._settings.api_token
        return token.get_secret_value() if token is not None and token.get_secret_value() else None

    def _render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self._env.get_template(name).render(
            version=__version__, refresh=REFRESH_SECONDS, **context
        )
        response = HTMLResponse(html, status_code=status)
        # A page with the CSRF token is never cached, nor shown inside another site's frame.
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def _page(
        self, request: Request, template: str, context: dict[str, Any], *, fragment: bool
    ) -> HTMLResponse:
        session = self._sessions.get(request, self._token())
        flash: list[tuple[bool, str]] = []
        if session is not None and not fragment:
            flash, session.flash = session.flash, []
        return self._render(
            template,
            session=session,
            flash=flash,
            path=request.url.path,
            **context,
        )

    def _read_failed(self, request: Request, error: Exception, *, fragment: bool) -> HTMLResponse:
        sentence = str(error) or type(error).__name__
        log_repeated("console.read_failed", "console.read_failed", error=sentence)
        return self._not_ready(
            request,
            f"the console cannot read the service's state now: {sentence}",
            fragment=fragment,
        )

    def _not_ready(self, request: Request, problem: str, *, fragment: bool) -> HTMLResponse:
        name = "_problem.html" if fragment else "problem.html"
        return self._render(name, 503, problem=problem, session=None, flash=[], path="/console")

    # -- pages ----------------------------------------------------------------------------------

    async def _overview(self, request: Request, fragment: bool) -> HTMLResponse:
        try:
            context = await views.overview(self._settings, self._gateway)
        except NotReady as problem:
            return self._not_ready(request, str(problem), fragment=fragment)
        except Exception as error:  # the database gone meanwhile, ...: one sentence, not a 500
            return self._read_failed(request, error, fragment=fragment)
        template = "_overview.html" if fragment else "overview.html"
        return self._page(request, template, context, fragment=fragment)

    async def overview(self, request: Request) -> Response:
        return await self._overview(request, False)

    async def overview_fragment(self, request: Request) -> Response:
        return await self._overview(request, True)

    async def _execution(self, request: Request, fragment: bool) -> HTMLResponse:
        text = request.path_params["id"]
        try:
            context = await views.execution_page(self._settings, self._gateway, parse_id(text))
        except NotReady as problem:
            return self._not_ready(request, str(problem), fragment=fragment)
        except (IdSyntaxError, ExecutionLookupError) as problem:
            name = "_problem.html" if fragment else "problem.html"
            return self._render(name, 404, problem=str(problem), session=None, flash=[], path="")
        except Exception as error:
            return self._read_failed(request, error, fragment=fragment)
        template = "_execution.html" if fragment else "execution.html"
        return self._page(request, template, context, fragment=fragment)

    async def execution(self, request: Request) -> Response:
        return await self._execution(request, False)

    async def execution_fragment(self, request: Request) -> Response:
        return await self._execution(request, True)

    # -- login ----------------------------------------------------------------------------------

    async def login_form(self, request: Request, problem: str | None = None) -> Response:
        return self._render(
            "login.html",
            401 if problem else 200,
            problem=problem,
            token_set=self._token() is not None,
            session=self._sessions.get(request, self._token()),
            flash=[],
            path="/console/login",
        )

    async def login(self, request: Request) -> Response:
        if not auth.same_origin(request):
            return self._refused("the login form must be sent from the console's own page")
        token = self._token()
        if token is None:
            return await self.login_form(request, "actions are disabled: API_TOKEN is not set")
        form = await _form(request)
        if form is None:
            return self._refused("the form is too large")
        presented = str(form.get("token", ""))
        operator = str(form.get("operator", "")).strip()
        if not auth.token_matches(presented, token):
            client = request.client.host if request.client is not None else None
            log_repeated(("console.login_refused", client), "console.login_refused", client=client)
            return await self.login_form(request, "that is not the service's API token")
        if not operator or len(operator) > auth.MAX_OPERATOR or not operator.isprintable():
            return await self.login_form(
                request, f"give your name (at most {auth.MAX_OPERATOR} characters)"
            )
        sid = self._sessions.open(operator, token)
        log.info("console.login", operator=operator)
        response = RedirectResponse("/console", status_code=303)
        auth.set_cookie(response, request, sid)
        return response

    async def logout(self, request: Request) -> Response:
        session = self._sessions.get(request, self._token())
        form = await _form(request)
        if session is not None and (
            not auth.same_origin(request)
            or form is None
            or not auth.csrf_matches(session, _text(form, "csrf"))
        ):
            return self._refused("the logout form must be sent from the console's own page")
        self._sessions.close(request)
        response = RedirectResponse("/console", status_code=303)
        auth.clear_cookie(response)
        return response

    # -- actions --------------------------------------------------------------------------------

    def _refused(self, problem: str, status: int = 403) -> HTMLResponse:
        return self._render(
            "problem.html", status, problem=problem, session=None, flash=[], path=""
        )

    async def act(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in actions.ACTIONS:
            return self._refused(f"no such action: {action}", 404)
        session = self._sessions.get(request, self._token())
        if session is None:
            return self._refused(
                "log in with the API token first: the console is read-only without it", 401
            )
        if not auth.same_origin(request):
            return self._refused("the action must be sent from the console's own page")
        form = await _form(request)
        if form is None or not auth.csrf_matches(session, _text(form, "csrf")):
            return self._refused("the form is stale or not the console's: reload the page")
        fields = dict(form)
        back = fields.get("back", "")
        if not back.startswith("/console") or "//" in back or "\\" in back:
            back = "/console"
        try:
            store = views.operator_store(self._gateway)
            result = await actions.perform(action, fields, store, self._settings, session.operator)
            session.flash.append((result.ok, f"{action}: {result.message}"))
        except actions.BadForm as problem:
            session.flash.append((False, f"{action}: not done, {problem}"))
        except NotReady as problem:
            session.flash.append((False, f"{action}: not done, {problem}"))
        except Exception as error:  # the database or the bridge failed part way: say so
            sentence = str(error) or type(error).__name__
            log.error("console.action_failed", action=action, error=sentence, exc_info=error)
            session.flash.append(
                (
                    False,
                    f"{action}: failed ({sentence}); it may have been done in part: check the "
                    "state above (or trade-executor status)",
                )
            )
        return RedirectResponse(quote(back, safe="/-"), status_code=303)


async def _form(request: Request) -> dict[str, str] | None:
    """The urlencoded form the console's pages send (the only kind they send), each field's
    first value; None for anything else, or more than MAX_FORM bytes."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM):
        return None
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM:
            return None
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=50
        )
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def _text(form: dict[str, str], key: str) -> str | None:
    return form.get(key)
