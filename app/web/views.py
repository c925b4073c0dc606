"""Web UI routes: parse the form, call the service layer, render or redirect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from quart import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers.response import Response as WerkzeugResponse

from app.errors import InvalidInput
from app.observability import events
from app.services import follows, messages, users
from app.services.messages import Cursor, Post
from app.web.same_site import is_cross_site

bp = Blueprint("web", __name__)

PER_PAGE = 30
# GET routes that change state (kept as GET for the classic UI's links).
STATE_CHANGING_GETS = frozenset({"web.follow_user", "web.unfollow_user", "web.logout"})

Page = str | WerkzeugResponse


@bp.before_request
async def load_user_and_refuse_cross_site() -> None:
    # The user first, so that even the 403 page shows the right navigation.
    g.user = None
    user_id = session.get("user_id")
    if isinstance(user_id, int):
        g.user = await users.by_id(user_id)
        if g.user is None:  # the account is gone: forget the stale session
            session.pop("user_id", None)
    if request.method not in ("GET", "HEAD", "OPTIONS") or request.endpoint in STATE_CHANGING_GETS:
        cross = is_cross_site(
            request.headers.get("Sec-Fetch-Site"), request.headers.get("Origin"), request.host
        )
        if cross:
            abort(403, "Cross-site request refused.")


def _require_login() -> int:
    if g.user is None:
        abort(401, "You need to sign in first.")
    return int(g.user.id)


async def _timeline(
    kind: str,
    fetch: Callable[[int, Cursor | None], Awaitable[list[Post]]],
    **context: Any,
) -> str:
    before = _cursor()
    posts = await fetch(PER_PAGE + 1, before)
    older = None
    if len(posts) > PER_PAGE:
        posts = posts[:PER_PAGE]
        older = Cursor(posts[-1].pub_date, posts[-1].id).encode()
    return await render_template(
        "timeline.html", kind=kind, messages=posts, older=older, paged=before is not None, **context
    )


def _cursor() -> Cursor | None:
    try:
        return Cursor.parse(request.args.get("before"))
    except InvalidInput as exc:
        abort(400, exc.message)


@bp.get("/")
async def timeline() -> Page:
    if g.user is None:
        return redirect(url_for("web.public_timeline"))
    user_id = int(g.user.id)

    async def fetch(limit: int, before: Cursor | None) -> list[Post]:
        return await messages.home(user_id, limit, before)

    return await _timeline("home", fetch)


@bp.get("/public")
async def public_timeline() -> Page:
    return await _timeline("public", messages.public)


@bp.get("/<username>")
async def user_timeline(username: str) -> Page:
    profile_user = await users.get(username)
    followed = False
    if g.user is not None and g.user.id != profile_user.id:
        followed = await follows.is_following(int(g.user.id), int(profile_user.id))

    async def fetch(limit: int, before: Cursor | None) -> list[Post]:
        return await messages.by_author(int(profile_user.id), limit, before)

    return await _timeline("user", fetch, profile_user=profile_user, followed=followed)


@bp.get("/<username>/follow")
async def follow_user(username: str) -> Page:
    _require_login()
    await follows.follow(g.user.username, username)
    events.followed("web", g.user.username, username)
    await flash(f'You are now following "{username}"')
    return redirect(url_for("web.user_timeline", username=username))


@bp.get("/<username>/unfollow")
async def unfollow_user(username: str) -> Page:
    _require_login()
    await follows.unfollow(g.user.username, username)
    events.unfollowed("web", g.user.username, username)
    await flash(f'You are no longer following "{username}"')
    return redirect(url_for("web.user_timeline", username=username))


@bp.post("/add_message")
async def add_message() -> Page:
    _require_login()
    text = (await request.form).get("text", "")
    if text:
        try:
            await messages.post(g.user.username, text)
        except InvalidInput as exc:
            await flash(exc.message)
        else:
            events.message_posted("web", g.user.username)
            await flash("Your message was recorded")
    else:
        await flash("Your message was empty, so nothing was recorded")
    return redirect(url_for("web.timeline"))


@bp.route("/login", methods=["GET", "POST"])
async def login() -> Page:
    if g.user is not None:
        return redirect(url_for("web.timeline"))
    error = None
    form = await request.form
    if request.method == "POST":
        username = form.get("username", "")
        try:
            user = await users.authenticate(username, form.get("password", ""))
        except InvalidInput as exc:
            events.login(False, username)
            error = exc.message
        else:
            events.login(True, username)
            session.clear()
            session["user_id"] = int(user.id)
            await flash("You were logged in")
            return redirect(url_for("web.timeline"))
    return await render_template("login.html", error=error, form=form)


@bp.route("/register", methods=["GET", "POST"])
async def register() -> Page:
    if g.user is not None:
        return redirect(url_for("web.timeline"))
    error = None
    form = await request.form
    if request.method == "POST":
        try:
            await users.register(
                form.get("username", ""),
                form.get("email", ""),
                form.get("password", ""),
                form.get("password2", ""),
            )
        except InvalidInput as exc:
            error = exc.message
        else:
            events.user_registered("web", form.get("username", ""))
            await flash("You were successfully registered and can login now")
            return redirect(url_for("web.login"))
    return await render_template("register.html", error=error, form=form)


@bp.get("/logout")
async def logout() -> Page:
    await flash("You were logged out")
    session.pop("user_id", None)
    return redirect(url_for("web.public_timeline"))


__all__ = ["bp"]
