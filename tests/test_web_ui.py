"""The web UI contract (web-ui.md) through plain HTTP, on both databases.

Most tests drive the web app in process with Quart's test client
(``web_client``); the ``live_`` ones go through ``minitwit serve`` (uvicorn,
the port dispatcher, real sockets and cookies) with httpx. Pages are read
with a small HTML tree built on the standard library's parser, so the tests
check the same elements a browser would show, not substrings of the source.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from hashlib import md5
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer
from quart import Quart
from quart.typing import TestClientProtocol as Client

from app.factory import create_web_app
from app.models import Message
from app.validation import STORED_TEXT_MAX
from tests.conftest import SIMULATOR_AUTH, LiveServer, make_settings, wipe

PASSWORD = "correct horse"
# Longer than the username column holds: nobody's name, never a database error.
TOO_LONG_TO_STORE = "x" * (STORED_TEXT_MAX + 1)
PER_PAGE = 30

# -- reading pages -----------------------------------------------------------------

VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


@dataclass
class Node:
    """An element of a parsed page: enough DOM for the contract's hooks."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag and (cls is None or cls in n.classes)]

    def find(self, tag: str, cls: str | None = None) -> Node | None:
        found = self.find_all(tag, cls)
        return found[0] if found else None

    def text(self) -> str:
        """The visible text, whitespace collapsed as a browser renders it."""
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join("".join(parts).split())

    def own_text(self) -> str:
        """Text directly inside this element, not inside its child elements."""
        return " ".join("".join(c for c in self.children if isinstance(c, str)).split())


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("dt", "dd") and self.stack[-1].tag in ("dt", "dd"):
            self.stack.pop()  # <dt>/<dd> close each other implicitly
        node = Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID_TAGS:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


@dataclass(frozen=True)
class Shown:
    """One message as a timeline shows it."""

    author: str
    author_href: str
    text: str
    time: str
    gravatar: str


@dataclass
class Page:
    status: int
    html: str
    doc: Node

    @classmethod
    def parse(cls, status: int, html: str) -> Page:
        builder = TreeBuilder()
        builder.feed(html)
        builder.close()
        return cls(status, html, builder.root)

    @property
    def title(self) -> str:
        node = self.doc.find("title")
        return node.text() if node else ""

    @property
    def heading(self) -> str:
        node = self.doc.find("h2")
        return node.text() if node else ""

    @property
    def flashes(self) -> list[str]:
        flashes = self.doc.find("ul", "flashes")
        return [li.text() for li in flashes.find_all("li")] if flashes else []

    @property
    def error(self) -> str | None:
        node = self.doc.find("div", "error")
        return node.text() if node else None

    @property
    def nav(self) -> dict[str, str]:
        nav = self.doc.find("div", "navigation")
        assert nav is not None, "the page has no navigation"
        return {a.text(): a.attrs["href"] for a in nav.find_all("a")}

    @property
    def follow_status(self) -> str | None:
        node = self.doc.find("div", "followstatus")
        return node.text() if node else None

    def link(self, cls: str) -> str | None:
        node = self.doc.find("a", cls)
        return node.attrs["href"] if node else None

    @property
    def messages(self) -> list[Shown]:
        listing = self.doc.find("ul", "messages")
        assert listing is not None, "the page has no message list"
        shown = []
        for li in listing.find_all("li"):
            paragraph, img = li.find("p"), li.find("img")
            if paragraph is None:
                continue  # "There's no message so far."
            author, time = paragraph.find("a"), paragraph.find("small")
            assert author is not None
            assert time is not None
            assert img is not None
            shown.append(
                Shown(
                    author=author.text(),
                    author_href=author.attrs["href"],
                    text=paragraph.own_text(),
                    time=time.text(),
                    gravatar=img.attrs["src"],
                )
            )
        return shown

    @property
    def texts(self) -> list[str]:
        return [m.text for m in self.messages]


async def read(response: Any) -> Page:
    return Page.parse(response.status_code, await response.get_data(as_text=True))


async def get(client: Client, path: str, **kwargs: Any) -> Page:
    return await read(await client.get(path, **kwargs))


async def redirected(client: Client, response: Any, to: str) -> Page:
    """Assert ``response`` redirects to ``to``, then load that page as a browser would."""
    assert response.status_code == 302, await response.get_data(as_text=True)
    assert response.headers["Location"] == to
    return await get(client, to)


# -- acting as a person ------------------------------------------------------------


def second_client(client: Client) -> Client:
    """Another browser on the same app: its own cookie jar."""
    return client.app.test_client()


async def register(
    client: Client,
    username: str,
    email: str | None = None,
    password: str = PASSWORD,
    password2: str | None = None,
) -> Any:
    form = {
        "username": username,
        "email": f"{username.lower()}@example.com" if email is None else email,
        "password": password,
        "password2": password if password2 is None else password2,
    }
    return await client.post("/register", form=form)


async def login(client: Client, username: str, password: str = PASSWORD) -> Any:
    return await client.post("/login", form={"username": username, "password": password})


async def sign_up_and_in(client: Client, username: str, email: str | None = None) -> None:
    assert (await register(client, username, email)).status_code == 302
    page = await redirected(client, await login(client, username), "/")
    assert page.flashes == ["You were logged in"]


async def post(client: Client, text: str) -> Any:
    return await client.post("/add_message", form={"text": text})


async def signed_in_as(client: Client) -> str | None:
    response = await client.get("/")
    if response.status_code == 302:
        assert response.headers["Location"] == "/public"
        return None
    page = await read(response)
    assert page.status == 200
    signout = [text for text in page.nav if text.startswith("sign out [")]
    assert len(signout) == 1, page.nav
    return signout[0].removeprefix("sign out [").removesuffix("]")


SIGNED_OUT_NAV = {"public timeline": "/public", "sign up": "/register", "sign in": "/login"}


def signed_in_nav(username: str) -> dict[str, str]:
    return {"my timeline": "/", "public timeline": "/public", f"sign out [{username}]": "/logout"}


# -- routes and redirects ------------------------------------------------------------


async def test_root_signed_out_redirects_to_public(web_client: Client) -> None:
    page = await redirected(web_client, await web_client.get("/"), "/public")
    assert page.status == 200
    assert page.heading == "Public Timeline"
    assert page.messages == []
    assert "There's no message so far." in page.doc.find("ul", "messages").text()  # type: ignore[union-attr]


async def test_register_form_inputs_in_document_order(web_client: Client) -> None:
    page = await get(web_client, "/register")
    assert page.status == 200
    forms = page.doc.find_all("form")
    assert len(forms) == 1
    assert forms[0].attrs["method"].lower() == "post"
    inputs = forms[0].find_all("input")
    assert [(i.attrs.get("name"), i.attrs["type"]) for i in inputs] == [
        ("username", "text"),
        ("email", "text"),
        ("password", "password"),
        ("password2", "password"),
        (None, "submit"),
    ]
    actions = forms[0].find("div", "actions")
    assert actions is not None
    assert [i.attrs["type"] for i in actions.find_all("input")] == ["submit"]


async def test_login_form_has_its_fields_and_submit_in_actions(web_client: Client) -> None:
    page = await get(web_client, "/login")
    form = page.doc.find("form")
    assert form is not None
    assert form.attrs["method"].lower() == "post"
    assert [i.attrs.get("name") for i in form.find_all("input")] == ["username", "password", None]
    actions = form.find("div", "actions")
    assert actions is not None
    assert actions.find("input") is not None
    assert actions.find_all("input")[0].attrs["type"] == "submit"


async def test_register_redirects_to_login_with_a_flash_shown_once(web_client: Client) -> None:
    response = await register(web_client, "alice")
    page = await redirected(web_client, response, "/login")
    assert page.flashes == ["You were successfully registered and can login now"]
    again = await get(web_client, "/login")
    assert again.flashes == []
    assert await signed_in_as(web_client) is None  # registering does not sign in


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({}, "You have to enter a username"),
        (
            {"username": "", "email": "bad", "password": "", "password2": "x"},
            "You have to enter a username",
        ),
        (
            {"username": "bob", "email": "", "password": "x"},
            "You have to enter a valid email address",
        ),
        (
            {"username": "bob", "email": "no-at-sign", "password": "", "password2": "y"},
            "You have to enter a valid email address",
        ),
        (
            {"username": "bob", "email": "bob@example.com", "password": "", "password2": "y"},
            "You have to enter a password",
        ),
        (
            {"username": "bob", "email": "bob@example.com", "password": "x", "password2": "y"},
            "The two passwords do not match",
        ),
        (
            {"username": "taken", "email": "t@example.com", "password": "x", "password2": "y"},
            "The two passwords do not match",
        ),
        (
            {"username": "taken", "email": "t", "password": "x", "password2": "x"},
            "You have to enter a valid email address",
        ),
        (
            {"username": "taken", "email": "t@example.com", "password": "x", "password2": "x"},
            "The username is already taken",
        ),
    ],
)
async def test_register_errors_in_contract_order(
    web_client: Client, form: dict[str, str], error: str
) -> None:
    assert (await register(second_client(web_client), "taken")).status_code == 302
    page = await read(await web_client.post("/register", form=form))
    assert page.status == 200
    assert page.error == f"Error: {error}"
    assert page.flashes == []
    # The form keeps what was typed, except the passwords.
    username = page.doc.find_all("input")[0]
    assert username.attrs["name"] == "username"
    assert username.attrs["value"] == form.get("username", "")
    if form.get("username") not in (None, "", "taken"):
        failed = await read(await login(web_client, form["username"], form.get("password", "")))
        assert failed.error == "Error: Invalid username"  # nothing was registered


async def test_login_errors(web_client: Client) -> None:
    await register(web_client, "alice")
    cases = [
        ({"username": "nobody", "password": PASSWORD}, "Invalid username"),
        ({"username": "", "password": ""}, "Invalid username"),
        ({"username": "alice", "password": "wrong"}, "Invalid password"),
        ({"username": "alice", "password": ""}, "Invalid password"),
        ({"username": "Alice", "password": PASSWORD}, "Invalid username"),
        ({"username": TOO_LONG_TO_STORE, "password": PASSWORD}, "Invalid username"),
    ]
    for form, error in cases:
        page = await read(await web_client.post("/login", form=form))
        assert page.status == 200
        assert page.error == f"Error: {error}"
        # The username typed is kept in the form.
        assert page.doc.find_all("input")[0].attrs["value"] == form["username"]
        assert await signed_in_as(web_client) is None


async def test_any_password_that_has_a_utf8_form_signs_in(web_client: Client) -> None:
    """Passwords are arbitrary Unicode (the contract); one is hashed, never stored, so
    even a NUL is just another character in it."""
    password = 'n\x00l "q" \\ 🎉 עברית'
    await register(web_client, "alice", password=password)
    page = await read(await login(web_client, "alice", password.replace("\x00", "")))
    assert page.error == "Error: Invalid password"
    page = await redirected(web_client, await login(web_client, "alice", password), "/")
    assert page.flashes == ["You were logged in"]


async def test_login_redirects_to_my_timeline_with_a_flash(web_client: Client) -> None:
    await register(web_client, "alice")
    page = await redirected(web_client, await login(web_client, "alice"), "/")
    assert page.status == 200
    assert page.flashes == ["You were logged in"]
    assert page.heading == "My Timeline"
    assert page.nav == signed_in_nav("alice")
    twitbox = page.doc.find("div", "twitbox")
    assert twitbox is not None
    form = twitbox.find("form")
    assert form is not None
    assert form.attrs["action"] == "/add_message"
    assert form.attrs["method"].lower() == "post"
    assert [i.attrs.get("name") for i in form.find_all("input")] == ["text", None]


async def test_login_and_register_pages_redirect_when_signed_in(web_client: Client) -> None:
    await sign_up_and_in(web_client, "alice")
    for path in ("/login", "/register"):
        response = await web_client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"] == "/"


async def test_logout_clears_the_session(web_client: Client) -> None:
    await sign_up_and_in(web_client, "alice")
    assert await signed_in_as(web_client) == "alice"
    page = await redirected(web_client, await web_client.get("/logout"), "/public")
    assert page.flashes == ["You were logged out"]
    assert page.nav == SIGNED_OUT_NAV
    assert await signed_in_as(web_client) is None
    assert (await post(web_client, "after logout")).status_code == 401
    assert (await get(web_client, "/public")).messages == []


async def test_stale_session_of_a_removed_user_is_forgotten(
    web_client: Client, database_url: str
) -> None:
    await sign_up_and_in(web_client, "alice")
    await wipe(database_url)
    assert await signed_in_as(web_client) is None
    assert (await post(web_client, "ghost")).status_code == 401


# -- messages ----------------------------------------------------------------------


async def test_add_message_records_and_shows_it_everywhere(web_client: Client) -> None:
    await sign_up_and_in(web_client, "alice", email="Alice@Example.COM")
    page = await redirected(web_client, await post(web_client, "hello, world"), "/")
    assert page.flashes == ["Your message was recorded"]
    gravatar = md5(b"alice@example.com", usedforsecurity=False).hexdigest()
    for path in ("/", "/public", "/alice"):
        [shown] = (await get(web_client, path)).messages
        assert shown.author == "alice"
        assert shown.author_href == "/alice"
        assert shown.text == "hello, world"
        assert re.fullmatch(r"— \d{4}-\d\d-\d\d @ \d\d:\d\d", shown.time), shown.time
        assert shown.gravatar == f"https://www.gravatar.com/avatar/{gravatar}?d=identicon&s=48"


async def test_message_text_is_html_escaped(web_client: Client) -> None:
    await sign_up_and_in(web_client, "alice")
    text = '<b>bold</b> & "quoted" <script>alert(1)</script> Grüße, 世界 🎉'
    await post(web_client, text)
    for path in ("/", "/public", "/alice"):
        page = await get(web_client, path)
        assert "&lt;b&gt;bold&lt;/b&gt;" in page.html
        assert "<b>" not in page.html
        assert "<script>" not in page.html
        assert page.doc.find_all("b") == []
        assert page.doc.find_all("script") == []
        assert page.texts == [text]


async def test_empty_message_records_nothing(web_client: Client) -> None:
    await sign_up_and_in(web_client, "alice")
    for form in ({"text": ""}, {}):
        page = await redirected(web_client, await web_client.post("/add_message", form=form), "/")
        assert "Your message was recorded" not in page.flashes
        assert page.messages == []
    assert (await get(web_client, "/public")).messages == []


async def test_message_over_the_limit_is_refused(web_client: Client) -> None:
    await sign_up_and_in(web_client, "alice")
    page = await redirected(web_client, await post(web_client, "x" * 1001), "/")
    assert page.flashes == ["The message must be at most 1000 characters"]
    assert page.messages == []
    page = await redirected(web_client, await post(web_client, "y" * 1000), "/")
    assert page.flashes == ["Your message was recorded"]
    assert page.texts == ["y" * 1000]


async def test_signed_out_state_changes_are_401(web_client: Client) -> None:
    await register(web_client, "bob")
    for response in (
        await post(web_client, "anonymous"),
        await web_client.get("/bob/follow"),
        await web_client.get("/bob/unfollow"),
    ):
        page = await read(response)
        assert page.status == 401
        assert page.title
        assert page.nav == SIGNED_OUT_NAV
    assert (await get(web_client, "/public")).messages == []


async def test_unknown_user_is_404(web_client: Client) -> None:
    for name in ("nobody", TOO_LONG_TO_STORE):
        page = await get(web_client, f"/{name}")
        assert page.status == 404
        assert page.title
        assert page.nav == SIGNED_OUT_NAV
    await sign_up_and_in(web_client, "alice")
    for name in ("nobody", TOO_LONG_TO_STORE):
        for path in (f"/{name}", f"/{name}/follow", f"/{name}/unfollow"):
            page = await get(web_client, path)
            assert page.status == 404, path
            assert page.nav == signed_in_nav("alice")
    assert (await get(web_client, "/")).flashes == []  # the 404s flashed nothing


# -- following ---------------------------------------------------------------------


async def test_follow_and_unfollow_from_the_user_page(web_client: Client) -> None:
    bob = second_client(web_client)
    await sign_up_and_in(bob, "bob")
    await post(bob, "bob was here")
    await sign_up_and_in(web_client, "alice")
    await post(web_client, "alice was here")

    page = await get(web_client, "/bob")
    assert page.heading == "bob's Timeline"
    assert page.follow_status == "You are not yet following this user. Follow user."
    assert page.link("follow") == "/bob/follow"
    assert page.link("unfollow") is None
    assert (await get(web_client, "/")).texts == ["alice was here"]

    page = await redirected(web_client, await web_client.get("/bob/follow"), "/bob")
    assert page.flashes == ['You are now following "bob"']
    assert "You are now following &#34;bob&#34;" in page.html
    assert page.follow_status == "You are currently following this user. Unfollow user."
    assert page.link("unfollow") == "/bob/unfollow"
    assert page.link("follow") is None
    assert (await get(web_client, "/")).texts == ["alice was here", "bob was here"]

    # Following again changes nothing (no duplicate messages on the timeline).
    await web_client.get("/bob/follow")
    assert (await get(web_client, "/")).texts == ["alice was here", "bob was here"]
    # bob's own timeline is not affected by alice following him.
    assert (await get(bob, "/")).texts == ["bob was here"]

    page = await redirected(web_client, await web_client.get("/bob/unfollow"), "/bob")
    assert page.flashes == ['You are no longer following "bob"']
    assert "You are no longer following &#34;bob&#34;" in page.html
    assert page.link("follow") == "/bob/follow"
    assert (await get(web_client, "/")).texts == ["alice was here"]

    # Unfollowing someone not followed is harmless.
    page = await redirected(web_client, await web_client.get("/bob/unfollow"), "/bob")
    assert page.flashes == ['You are no longer following "bob"']


async def test_user_pages_show_no_follow_link_to_self_or_signed_out(web_client: Client) -> None:
    await register(web_client, "bob")
    page = await get(web_client, "/bob")
    assert page.status == 200
    assert page.follow_status is None
    assert page.link("follow") is None
    await sign_up_and_in(web_client, "alice")
    page = await get(web_client, "/alice")
    assert page.follow_status == "This is you!"
    assert page.link("follow") is None
    assert page.link("unfollow") is None
    assert page.doc.find("div", "twitbox") is None


async def test_usernames_with_spaces_and_markup_are_linked_and_escaped(
    web_client: Client,
) -> None:
    name = 'Roger "R" <Histand>'
    other = second_client(web_client)
    await sign_up_and_in(other, name, email="roger@example.com")
    await post(other, "hi")
    await sign_up_and_in(web_client, "alice")
    [shown] = (await get(web_client, "/public")).messages
    assert shown.author == name
    href = shown.author_href
    assert href == "/Roger%20%22R%22%20%3CHistand%3E"
    page = await get(web_client, href)
    assert page.status == 200
    assert page.heading == f"{name}'s Timeline"
    assert "<Histand>" not in page.html
    follow = page.link("follow")
    assert follow == f"{href}/follow"
    page = await redirected(web_client, await web_client.get(follow), href)
    assert page.flashes == [f'You are now following "{name}"']
    assert "You are now following &#34;Roger &#34;R&#34; &lt;Histand&gt;&#34;" in page.html
    assert (await get(web_client, "/")).texts == ["hi"]


# -- timelines and paging ------------------------------------------------------------


async def pages_of(client: Client, path: str) -> list[Page]:
    """Follow the "older messages" links from ``path`` to the last page."""
    pages = [await get(client, path)]
    while (older := pages[-1].link("older")) is not None:
        assert len(pages) < 10, "the older links do not end"
        older_link = pages[-1].doc.find("a", "older")
        assert older_link is not None
        assert "older messages" in older_link.text()
        pages.append(await get(client, older))
    return pages


async def test_thirty_per_page_newest_first_with_older_links(web_client: Client) -> None:
    await sign_up_and_in(web_client, "alice")
    texts = [f"message {i:02d}" for i in range(65)]
    for text in texts:
        await post(web_client, text)
    newest_first = texts[::-1]
    for path in ("/", "/public", "/alice"):
        pages = await pages_of(web_client, path)
        assert [p.status for p in pages] == [200, 200, 200]
        assert [len(p.messages) for p in pages] == [30, 30, 5]
        assert [t for p in pages for t in p.texts] == newest_first  # no gaps, no repeats
        assert pages[0].link("newest") is None
        assert all(p.link("newest") == path for p in pages[1:])
        assert all(p.heading == pages[0].heading for p in pages)


async def test_paging_links_keep_a_name_with_url_syntax_in_the_path(web_client: Client) -> None:
    name = "a?b#c d%e"
    await sign_up_and_in(web_client, name)
    for i in range(PER_PAGE + 1):
        await post(web_client, f"m{i}")
    path = "/a%3Fb%23c%20d%25e"
    pages = await pages_of(web_client, path)
    assert [p.heading for p in pages] == [f"{name}'s Timeline"] * 2
    assert [len(p.messages) for p in pages] == [PER_PAGE, 1]
    assert pages[1].link("newest") == path


async def test_exactly_one_page_has_no_older_link(web_client: Client) -> None:
    await sign_up_and_in(web_client, "alice")
    for i in range(PER_PAGE):
        await post(web_client, f"m{i}")
    page = await get(web_client, "/public")
    assert len(page.messages) == PER_PAGE
    assert page.link("older") is None
    assert page.doc.find("div", "pagination") is None


async def test_order_is_by_publication_time_then_posting_order(web_client: Client) -> None:
    """Times out of posting order, with many ties: pages follow (pub_date, id) descending."""
    await sign_up_and_in(web_client, "alice")
    count, base = 65, 1_700_000_000  # 2023-11-14 22:13:20 UTC
    texts = [f"posted {i:02d}" for i in range(count)]
    for text in texts:
        await post(web_client, text)
    offsets = [(i * 7) % 13 for i in range(count)]
    for text, offset in zip(texts, offsets, strict=True):
        await Message.filter(text=text).update(pub_date=base + offset)
    expected = [texts[i] for i in sorted(range(count), key=lambda i: (offsets[i], i), reverse=True)]
    pages = await pages_of(web_client, "/public")
    assert [t for p in pages for t in p.texts] == expected
    assert {m.time for p in pages for m in p.messages} == {"— 2023-11-14 @ 22:13"}


async def test_older_pages_do_not_shift_when_new_messages_arrive(web_client: Client) -> None:
    await sign_up_and_in(web_client, "alice")
    for i in range(40):
        await post(web_client, f"old {i}")
    older = (await get(web_client, "/public")).link("older")
    assert older is not None
    before = (await get(web_client, older)).texts
    for i in range(5):
        await post(web_client, f"new {i}")
    assert (await get(web_client, older)).texts == before
    assert before == [f"old {i}" for i in range(9, -1, -1)]


async def test_home_timeline_pages_only_own_and_followed_messages(web_client: Client) -> None:
    bob, carol = second_client(web_client), second_client(web_client)
    await sign_up_and_in(bob, "bob")
    await sign_up_and_in(carol, "carol")
    await sign_up_and_in(web_client, "alice")
    await web_client.get("/bob/follow")
    expected = []
    for i in range(24):
        author = (web_client, bob, carol)[i % 3]
        await post(author, f"{i}")
        if author is not carol:
            expected.append(f"{i}")
    pages = await pages_of(web_client, "/")
    assert [t for p in pages for t in p.texts] == expected[::-1]
    assert {m.author for p in pages for m in p.messages} == {"alice", "bob"}
    carol_pages = await pages_of(web_client, "/carol")
    assert [t for p in carol_pages for t in p.texts] == [f"{i}" for i in range(23, -1, -3)]


async def test_malformed_page_position_is_400(web_client: Client) -> None:
    await register(web_client, "alice")
    huge = 2**63  # past bigint: no message could be there
    for path in ("/public?before=yesterday", "/alice?before=1.x", f"/public?before={huge}.1"):
        page = await get(web_client, path)
        assert page.status == 400
        assert page.title
        assert page.nav == SIGNED_OUT_NAV


# -- every page ----------------------------------------------------------------------


async def test_every_page_has_a_title_and_the_navigation(web_client: Client) -> None:
    await register(web_client, "bob")
    signed_out = {
        "/public": ("Public Timeline", 200),
        "/login": ("Sign In", 200),
        "/register": ("Sign Up", 200),
        "/bob": ("bob's Timeline", 200),
        "/nobody": (None, 404),
        "/bob/follow": (None, 401),
    }
    for path, (title, status) in signed_out.items():
        page = await get(web_client, path)
        assert page.status == status, path
        assert re.fullmatch(r".+ \| MiniTwit", page.title), path
        if title is not None:
            assert page.title == f"{title} | MiniTwit"
            assert page.heading == title
        assert page.nav == SIGNED_OUT_NAV, path
    await sign_up_and_in(web_client, "alice")
    signed_in = {
        "/": ("My Timeline", 200),
        "/public": ("Public Timeline", 200),
        "/bob": ("bob's Timeline", 200),
        "/alice": ("alice's Timeline", 200),
        "/nobody": (None, 404),
    }
    for path, (title, status) in signed_in.items():
        page = await get(web_client, path)
        assert page.status == status, path
        assert re.fullmatch(r".+ \| MiniTwit", page.title), path
        if title is not None:
            assert page.title == f"{title} | MiniTwit"
        assert page.nav == signed_in_nav("alice"), path


# -- sessions and cross-site requests --------------------------------------------------


def session_cookie(response: Any) -> str:
    cookies = [
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("minitwit_session=")
    ]
    assert len(cookies) == 1, response.headers
    return str(cookies[0])


def cookie_attributes(set_cookie: str) -> dict[str, str]:
    attributes = {}
    for part in set_cookie.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    return attributes


async def test_session_cookie_is_httponly_and_samesite_lax(web_client: Client) -> None:
    await register(web_client, "alice")
    attributes = cookie_attributes(session_cookie(await login(web_client, "alice")))
    assert "httponly" in attributes
    assert attributes["samesite"] == "Lax"
    assert attributes["path"] == "/"
    assert "secure" not in attributes  # plain-HTTP test server; production turns it on


async def test_session_cookie_is_secure_when_configured(clean_db: str) -> None:
    app = create_web_app(make_settings(clean_db, secure_cookies=True))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await register(client, "alice")
        attributes = cookie_attributes(session_cookie(await login(client, "alice")))
    assert {"secure", "httponly"} <= attributes.keys()
    assert attributes["samesite"] == "Lax"


def signer(app: Quart) -> URLSafeTimedSerializer:
    """What the app signs its session cookies with."""
    serializer = app.session_interface.get_signing_serializer(app)
    assert isinstance(serializer, URLSafeTimedSerializer)
    return serializer


async def test_session_signed_with_another_secret_is_ignored(
    web_client: Client, clean_db: str
) -> None:
    await register(web_client, "alice")
    genuine = signer(web_client.app)
    cookie = session_cookie(await login(web_client, "alice")).split(";")[0]
    alice_session = genuine.loads(cookie.removeprefix("minitwit_session="))
    assert isinstance(alice_session["user_id"], int)
    contents = {"user_id": alice_session["user_id"]}

    # alice's session contents, signed with a key that is not the app's.
    forger = signer(create_web_app(make_settings(clean_db, secret_key="another-secret-" * 3)))
    forged = "minitwit_session=" + forger.dumps(contents)
    response = await second_client(web_client).get("/", headers={"Cookie": forged})
    assert response.status_code == 302
    assert response.headers["Location"] == "/public"
    # The same contents signed with the app's own secret are a valid session: the
    # refusal above is about the signature, not the cookie's shape.
    good = "minitwit_session=" + genuine.dumps(contents)
    response = await second_client(web_client).get("/", headers={"Cookie": good})
    assert response.status_code == 200
    assert "sign out [alice]" in (await read(response)).nav


CROSS_SITE = {"Sec-Fetch-Site": "cross-site"}
FOREIGN_ORIGIN = {"Origin": "http://evil.example"}


async def is_following(client: Client, username: str) -> bool:
    page = await get(client, f"/{username}")
    return page.link("unfollow") is not None


async def test_cross_site_state_changes_are_refused(web_client: Client) -> None:
    await register(web_client, "bob")
    await sign_up_and_in(web_client, "alice")

    for headers in (
        CROSS_SITE,
        FOREIGN_ORIGIN,
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        response = await web_client.post("/add_message", form={"text": "csrf"}, headers=headers)
        page = await read(response)
        assert page.status == 403, headers
        assert page.title
        assert page.nav == signed_in_nav("alice")
    assert (await get(web_client, "/public")).messages == []

    assert (await web_client.get("/bob/follow", headers=CROSS_SITE)).status_code == 403
    assert not await is_following(web_client, "bob")
    await web_client.get("/bob/follow")
    assert (await web_client.get("/bob/unfollow", headers=CROSS_SITE)).status_code == 403
    assert await is_following(web_client, "bob")
    assert (await web_client.get("/logout", headers=CROSS_SITE)).status_code == 403
    assert await signed_in_as(web_client) == "alice"

    # Forcing a sign-in or a registration from another site is refused too.
    stranger = second_client(web_client)
    for headers in (CROSS_SITE, FOREIGN_ORIGIN):
        login_response = await stranger.post(
            "/login", form={"username": "bob", "password": PASSWORD}, headers=headers
        )
        assert login_response.status_code == 403
        assert await signed_in_as(stranger) is None
        form = {"username": "mallory", "email": "m@example.com", "password": "x", "password2": "x"}
        register_response = await stranger.post("/register", form=form, headers=headers)
        assert register_response.status_code == 403
        assert (await get(stranger, "/mallory")).status == 404


async def test_same_origin_and_plain_clients_keep_working(web_client: Client) -> None:
    await register(web_client, "bob")
    await sign_up_and_in(web_client, "alice")  # plain client: neither header
    allowed: list[dict[str, str]] = [
        {},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": "http://localhost"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    ]
    for i, headers in enumerate(allowed):
        response = await web_client.post("/add_message", form={"text": f"ok {i}"}, headers=headers)
        assert response.status_code == 302, headers
    expected = [f"ok {i}" for i in range(len(allowed) - 1, -1, -1)]
    assert (await get(web_client, "/public")).texts == expected
    follow = await web_client.get("/bob/follow", headers={"Sec-Fetch-Site": "same-origin"})
    assert follow.status_code == 302
    assert await is_following(web_client, "bob")
    # Reading pages from a link on another site works: only state changes are refused.
    for path in ("/", "/public", "/bob"):
        response = await web_client.get(path, headers=CROSS_SITE)
        assert response.status_code == 200, path
    logout = await web_client.get("/logout", headers={"Sec-Fetch-Site": "none"})
    assert logout.status_code == 302
    assert await signed_in_as(web_client) is None


# -- through the real server ---------------------------------------------------------


async def live_page(response: httpx.Response) -> Page:
    return Page.parse(response.status_code, response.text)


async def test_live_sign_up_post_follow_and_sign_out(live: LiveServer) -> None:
    async with (
        httpx.AsyncClient(base_url=live.web_url) as alice,
        httpx.AsyncClient(base_url=live.web_url) as bob,
    ):
        for client, name in ((alice, "alice"), (bob, "bob")):
            form = {"username": name, "email": f"{name}@example.com"}
            form |= {"password": PASSWORD, "password2": PASSWORD}
            response = await client.post("/register", data=form)
            assert response.status_code == 302
            assert response.headers["location"] == "/login"
            page = await live_page(await client.get("/login"))
            assert page.flashes == ["You were successfully registered and can login now"]
            response = await client.post("/login", data={"username": name, "password": PASSWORD})
            assert response.status_code == 302
            assert response.headers["location"] == "/"
            assert (await live_page(await client.get("/"))).flashes == ["You were logged in"]
            attributes = cookie_attributes(
                next(
                    c
                    for c in response.headers.get_list("set-cookie")
                    if c.startswith("minitwit_session=")
                )
            )
            assert "httponly" in attributes
            assert attributes["samesite"] == "Lax"

        response = await bob.post("/add_message", data={"text": "<b>bob</b> says hej 👋"})
        assert response.status_code == 302
        page = await live_page(await bob.get("/"))
        assert page.flashes == ["Your message was recorded"]
        assert "&lt;b&gt;bob&lt;/b&gt;" in page.html
        assert page.texts == ["<b>bob</b> says hej 👋"]

        assert (await alice.get("/bob/follow")).headers["location"] == "/bob"
        page = await live_page(await alice.get("/bob"))
        assert page.flashes == ['You are now following "bob"']
        assert "&#34;bob&#34;" in page.html
        assert (await live_page(await alice.get("/"))).texts == ["<b>bob</b> says hej 👋"]

        response = await alice.get("/logout")
        assert (response.status_code, response.headers["location"]) == (302, "/public")
        page = await live_page(await alice.get("/public"))
        assert page.flashes == ["You were logged out"]
        assert page.nav == SIGNED_OUT_NAV
        response = await alice.get("/")
        assert (response.status_code, response.headers["location"]) == (302, "/public")
        assert (await alice.post("/add_message", data={"text": "x"})).status_code == 401


async def test_live_cross_site_requests_are_refused(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.web_url) as client:
        form = {"username": "alice", "email": "a@example.com", "password": "x", "password2": "x"}
        assert (await client.post("/register", data=form)).status_code == 302
        for headers in (CROSS_SITE, FOREIGN_ORIGIN):
            response = await client.post(
                "/login", data={"username": "alice", "password": "x"}, headers=headers
            )
            assert response.status_code == 403
            assert "text/html" in response.headers["content-type"]
        # The browser's Origin for this very server is accepted.
        response = await client.post(
            "/login",
            data={"username": "alice", "password": "x"},
            headers={"Origin": live.web_url, "Sec-Fetch-Site": "same-origin"},
        )
        assert response.status_code == 302
        response = await client.post("/add_message", data={"text": "x"}, headers=FOREIGN_ORIGIN)
        assert response.status_code == 403
        response = await client.get("/alice/follow", headers=CROSS_SITE)
        assert response.status_code == 403
        response = await client.post(
            "/add_message", data={"text": "mine"}, headers={"Origin": live.web_url}
        )
        assert response.status_code == 302
        assert (await live_page(await client.get("/public"))).texts == ["mine"]


async def test_live_pages_errors_and_static_files(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.web_url) as client:
        page = await live_page(await client.get("/nobody"))
        assert page.status == 404
        assert page.title
        assert page.nav == SIGNED_OUT_NAV
        # Messages posted through the simulator API show on the web UI, newest first.
        async with httpx.AsyncClient(base_url=live.api_url, headers=SIMULATOR_AUTH) as api:
            body = {"username": "sim", "email": "sim@example.com", "pwd": "x"}
            assert (await api.post("/register", json=body)).status_code == 204
            for i in range(PER_PAGE + 2):
                response = await api.post("/msgs/sim", json={"content": f"sim {i}"})
                assert response.status_code == 204
        first = await live_page(await client.get("/sim"))
        assert first.texts == [f"sim {i}" for i in range(PER_PAGE + 1, 1, -1)]
        older = first.link("older")
        assert older is not None
        assert older.startswith("/sim?before=")
        assert (await live_page(await client.get(older))).texts == ["sim 1", "sim 0"]
        stylesheet = page.doc.find("link")
        assert stylesheet is not None
        assert stylesheet.attrs["rel"] == "stylesheet"
        response = await client.get(stylesheet.attrs["href"])
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/css")
