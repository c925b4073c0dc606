"""The web UI as a person uses it: headless Chromium against ``minitwit serve``.

Each test drives a real browser (Playwright's async API on the session's event
loop) against the live server, filling forms, clicking links and buttons, and
reading what the page shows. The browser sends its own ``Sec-Fetch-Site`` and
``Origin`` headers and keeps the real cookies, so these tests also show that the
cross-site checks let a real person through and stop a real cross-site page.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright, expect

from tests.conftest import SIMULATOR_AUTH, LiveServer

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
# The machine may have no network: without these, Chromium keeps trying to reach
# Google's services and floods the log with refused connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(tempfile.gettempdir()) / "minitwit-timeline.png"
PASSWORD = "correct horse battery"
EVIL_SITE = "http://evil.example"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the whole module."""
    if not HAVE_CHROMIUM:
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM}; the browser tests need it "
            "(Debian: apt-get install chromium; ./scripts/test installs it when run as root)"
        )
    # Assertions wait for the page to reach the expected state; be patient on a busy machine.
    expect.set_options(timeout=15_000)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


class Person:
    """One person with their own browser window (cookies and all)."""

    def __init__(self, context: BrowserContext, page: Page, base_url: str) -> None:
        self.context = context
        self.page = page
        self.base_url = base_url

    async def expect_flashes(self, *texts: str) -> None:
        await expect(self.page.locator("ul.flashes li")).to_have_text(list(texts))

    async def open_site(self) -> None:
        await self.page.goto(self.base_url + "/")

    async def sign_up(self, username: str, email: str, password: str = PASSWORD) -> None:
        await self.page.get_by_role("link", name="sign up", exact=True).click()
        await expect(self.page).to_have_title(re.compile("^Sign Up"))
        await self.page.locator("input[name=username]").fill(username)
        await self.page.locator("input[name=email]").fill(email)
        await self.page.locator("input[name=password]").fill(password)
        await self.page.locator("input[name=password2]").fill(password)
        await self.page.locator("div.actions input[type=submit]").click()
        await expect(self.page).to_have_url(f"{self.base_url}/login")
        await self.expect_flashes("You were successfully registered and can login now")

    async def sign_in(self, username: str, password: str = PASSWORD) -> None:
        await self.page.get_by_role("link", name="sign in", exact=True).click()
        await expect(self.page).to_have_title(re.compile("^Sign In"))
        await self.page.locator("input[name=username]").fill(username)
        await self.page.locator("input[name=password]").fill(password)
        await self.page.locator("div.actions input[type=submit]").click()

    async def post(self, text: str) -> None:
        await self.page.locator("div.twitbox input[name=text]").fill(text)
        await self.page.locator("div.twitbox input[type=submit]").click()
        await expect(self.page).to_have_url(f"{self.base_url}/")
        await self.expect_flashes("Your message was recorded")

    async def go_to_my_timeline(self) -> None:
        await self.page.get_by_role("link", name="my timeline", exact=True).click()
        await expect(self.page.locator("h2")).to_have_text("My Timeline")

    async def go_to_public_timeline(self) -> None:
        await self.page.get_by_role("link", name="public timeline", exact=True).click()
        await expect(self.page.locator("h2")).to_have_text("Public Timeline")


NewPerson = Callable[[], Awaitable[Person]]


@pytest.fixture
async def new_person(browser: Browser, live: LiveServer) -> AsyncIterator[NewPerson]:
    """Opens a browser window (a fresh context) for one more person, closed afterwards."""
    opened: list[Person] = []

    async def open_window() -> Person:
        context = await browser.new_context(locale="en-US", viewport={"width": 1000, "height": 900})
        person = Person(context, await context.new_page(), live.web_url)
        opened.append(person)
        return person

    yield open_window
    for person in opened:
        await person.context.close()


async def test_sign_up_post_follow_read_unfollow_and_sign_out(
    new_person: NewPerson, live: LiveServer
) -> None:
    alice, bob = await new_person(), await new_person()

    # bob signs up, signs in and says something.
    await bob.open_site()
    await expect(bob.page).to_have_url(f"{live.web_url}/public")
    await bob.sign_up("bob", "bob@example.com")
    await bob.sign_in("bob")
    await bob.expect_flashes("You were logged in")
    await bob.post("Hello from bob")

    # alice signs up, first mistyping her password once.
    await alice.open_site()
    await alice.page.get_by_role("link", name="sign up", exact=True).click()
    await alice.page.locator("input[name=username]").fill("alice")
    await alice.page.locator("input[name=email]").fill("alice@example.com")
    await alice.page.locator("input[name=password]").fill(PASSWORD)
    await alice.page.locator("input[name=password2]").fill(PASSWORD + "!")
    await alice.page.locator("div.actions input[type=submit]").click()
    await expect(alice.page.locator("div.error")).to_have_text(
        "Error: The two passwords do not match"
    )
    await expect(alice.page.locator("input[name=username]")).to_have_value("alice")
    await alice.go_to_public_timeline()
    await alice.sign_up("alice", "alice@example.com")

    # A wrong password, then the right one.
    await alice.sign_in("alice", "not my password")
    await expect(alice.page.locator("div.error")).to_have_text("Error: Invalid password")
    await alice.sign_in("alice")
    await expect(alice.page).to_have_url(f"{live.web_url}/")
    await alice.expect_flashes("You were logged in")
    await expect(alice.page.locator("h2")).to_have_text("My Timeline")
    await expect(alice.page.locator("div.navigation")).to_contain_text("sign out [alice]")

    # She posts markup and non-ASCII text: it shows as typed, not as markup.
    text = "<b>not bold</b> — Grüße, 世界 🎉"
    await alice.post(text)
    alice_message = alice.page.locator("ul.messages > li").filter(has_text="Grüße")
    await expect(alice_message.locator("p")).to_contain_text(text)
    await expect(alice.page.locator("ul.messages b")).to_have_count(0)
    await expect(alice_message.locator("strong a")).to_have_text("alice")
    await expect(alice_message.locator("img")).to_have_attribute(
        "src", re.compile(r"^https://www\.gravatar\.com/avatar/[0-9a-f]{32}\?")
    )

    # From the public timeline she opens bob's page and follows him.
    await alice.go_to_public_timeline()
    await expect(alice.page.locator("ul.messages > li")).to_have_count(2)
    await alice.page.locator("ul.messages").get_by_role("link", name="bob", exact=True).click()
    await expect(alice.page).to_have_url(f"{live.web_url}/bob")
    await expect(alice.page.locator("h2")).to_have_text("bob's Timeline")
    await expect(alice.page.locator("div.followstatus")).to_contain_text(
        "You are not yet following this user."
    )
    await alice.page.get_by_role("link", name="Follow user").click()
    await expect(alice.page).to_have_url(f"{live.web_url}/bob")
    await alice.expect_flashes('You are now following "bob"')
    await expect(alice.page.locator("div.followstatus")).to_contain_text(
        "You are currently following this user."
    )

    # Her timeline now has bob's message under her newer one.
    await alice.go_to_my_timeline()
    items = alice.page.locator("ul.messages > li")
    await expect(items).to_have_count(2)
    await expect(items.nth(0)).to_contain_text(text)
    await expect(items.nth(1)).to_contain_text("Hello from bob")
    await expect(items.nth(1).locator("strong a")).to_have_text("bob")
    await alice.page.screenshot(path=str(SCREENSHOT), full_page=True)

    # She unfollows bob from his page; his message leaves her timeline.
    await items.nth(1).locator("strong a").click()
    await expect(alice.page).to_have_url(f"{live.web_url}/bob")
    await alice.page.get_by_role("link", name="Unfollow user").click()
    await alice.expect_flashes('You are no longer following "bob"')
    await expect(alice.page.get_by_role("link", name="Follow user")).to_be_visible()
    await alice.go_to_my_timeline()
    await expect(items).to_have_count(1)
    await expect(items.nth(0)).to_contain_text(text)

    # Signing out lands on the public timeline with the signed-out navigation.
    await alice.page.get_by_role("link", name="sign out [alice]").click()
    await expect(alice.page).to_have_url(f"{live.web_url}/public")
    await alice.expect_flashes("You were logged out")
    navigation = alice.page.locator("div.navigation a")
    await expect(navigation).to_have_text(["public timeline", "sign up", "sign in"])
    await alice.page.goto(f"{live.web_url}/")
    await expect(alice.page).to_have_url(f"{live.web_url}/public")


async def test_session_cookie_is_httponly_and_samesite_lax(new_person: NewPerson) -> None:
    carol = await new_person()
    await carol.open_site()
    await carol.sign_up("carol", "carol@example.com")
    await carol.sign_in("carol")
    await carol.expect_flashes("You were logged in")
    [cookie] = [c for c in await carol.context.cookies() if c["name"] == "minitwit_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    # Page scripts cannot read it.
    assert "minitwit_session" not in await carol.page.evaluate("document.cookie")


async def test_older_messages_link_pages_through_the_timeline(
    new_person: NewPerson, live: LiveServer
) -> None:
    async with httpx.AsyncClient(base_url=live.api_url, headers=SIMULATOR_AUTH) as api:
        body = {"username": "chatty", "email": "chatty@example.com", "pwd": "x"}
        assert (await api.post("/register", json=body)).status_code == 204
        for i in range(35):
            response = await api.post("/msgs/chatty", json={"content": f"note {i:02d}"})
            assert response.status_code == 204
    reader = await new_person()
    await reader.open_site()
    items = reader.page.locator("ul.messages > li p")
    await expect(items).to_have_count(30)
    await expect(items.first).to_contain_text("note 34")
    await expect(items.last).to_contain_text("note 05")
    await reader.page.get_by_role("link", name=re.compile("older messages")).click()
    await expect(items).to_have_count(5)
    await expect(items.first).to_contain_text("note 04")
    await expect(items.last).to_contain_text("note 00")
    await expect(reader.page.get_by_role("link", name=re.compile("older messages"))).to_have_count(
        0
    )
    await reader.page.get_by_role("link", name=re.compile("newest messages")).click()
    await expect(items.first).to_contain_text("note 34")


async def test_another_site_cannot_make_the_browser_change_state(
    new_person: NewPerson, live: LiveServer
) -> None:
    """A page on another site links and posts to MiniTwit; the signed-in browser is refused."""
    dave, erin = await new_person(), await new_person()
    await erin.open_site()
    await erin.sign_up("erin", "erin@example.com")
    await dave.open_site()
    await dave.sign_up("dave", "dave@example.com")
    await dave.sign_in("dave")
    await dave.expect_flashes("You were logged in")

    attack = f"""<!doctype html><title>Win a prize</title>
        <a id="follow" href="{live.web_url}/erin/follow">claim</a>
        <a id="logout" href="{live.web_url}/logout">leave</a>
        <form id="post" method="post" action="{live.web_url}/add_message">
          <input type="hidden" name="text" value="I was made to say this">
          <input type="submit" value="go">
        </form>"""

    async def serve_attack(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body=attack)

    await dave.page.route(f"{EVIL_SITE}/**", serve_attack)
    for element in ("a#follow", "a#logout", "form#post input[type=submit]"):
        await dave.page.goto(f"{EVIL_SITE}/")
        async with dave.page.expect_navigation() as navigation:
            await dave.page.locator(element).click()
        response = await navigation.value
        assert response is not None
        assert response.status == 403, element
        await expect(dave.page.locator("h2")).to_have_text("Forbidden")

    # Nothing changed: dave is still signed in, follows nobody, said nothing.
    await dave.page.goto(f"{live.web_url}/erin")
    await expect(dave.page.locator("div.navigation")).to_contain_text("sign out [dave]")
    await expect(dave.page.locator("div.followstatus")).to_contain_text(
        "You are not yet following this user."
    )
    await dave.page.goto(f"{live.web_url}/public")
    await expect(dave.page.locator("ul.messages")).to_contain_text("There's no message so far.")
    # The same actions from MiniTwit's own pages work.
    await dave.page.goto(f"{live.web_url}/erin")
    await dave.page.get_by_role("link", name="Follow user").click()
    await dave.expect_flashes('You are now following "erin"')
