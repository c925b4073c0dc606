"""The simulator API contract (simulator-api.md), endpoint by endpoint, on both databases."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from quart.typing import TestClientProtocol as Client

from tests.conftest import SIMULATOR_AUTH, LiveServer

pytestmark = pytest.mark.asyncio


async def register(client: Client, name: str, latest: int | None = None) -> int:
    query = f"?latest={latest}" if latest is not None else ""
    response = await client.post(
        f"/register{query}", json={"username": name, "email": f"{name}@example.com", "pwd": "pw"}
    )
    return response.status_code


async def test_latest_starts_at_minus_one(api_client: Client) -> None:
    response = await api_client.get("/latest")
    assert response.status_code == 200
    assert await response.get_json() == {"latest": -1}


async def test_register_then_latest_is_recorded(api_client: Client) -> None:
    assert await register(api_client, "alice", latest=7) == 204
    assert await (await api_client.get("/latest")).get_json() == {"latest": 7}


async def test_register_errors_in_contract_order(api_client: Client) -> None:
    cases = [
        ({"username": "", "email": "", "pwd": ""}, "You have to enter a username"),
        (
            {"username": "a", "email": "no-at-sign", "pwd": ""},
            "You have to enter a valid email address",
        ),
        ({"username": "a", "email": "", "pwd": "x"}, "You have to enter a valid email address"),
        ({"username": "a", "email": "a@b", "pwd": ""}, "You have to enter a password"),
    ]
    for body, message in cases:
        response = await api_client.post("/register", json=body)
        assert response.status_code == 400
        assert await response.get_json() == {"status": 400, "error_msg": message}
    assert await register(api_client, "a") == 204
    response = await api_client.post(
        "/register?latest=3", json={"username": "a", "email": "a@b", "pwd": "x"}
    )
    assert response.status_code == 400
    assert (await response.get_json())["error_msg"] == "The username is already taken"
    # A refused registration still counts as processed.
    assert await (await api_client.get("/latest")).get_json() == {"latest": 3}


async def test_a_204_has_no_body_and_no_headers_about_one(live: LiveServer) -> None:
    """RFC 9110: no Content-Length on a 204, nor a Content-Type for a body it cannot
    have. Over a real server: the test client would make up both headers itself."""
    async with httpx.AsyncClient(base_url=live.api_url, headers=SIMULATOR_AUTH) as client:
        registered = [
            await client.post(
                "/register", json={"username": name, "email": "a@example.com", "pwd": "pw"}
            )
            for name in ("a", "bob")
        ]
        for response in (
            *registered,
            await client.post("/msgs/a", json={"content": "x"}),
            await client.post("/fllws/a", json={"follow": "bob"}),
        ):
            assert response.status_code == 204
            assert response.content == b""
            assert "content-length" not in response.headers
            assert "content-type" not in response.headers


@pytest.mark.parametrize("name", ["/lead", "a//b", "trail/", "/"])
async def test_a_name_with_slashes_is_its_own_user(api_client: Client, name: str) -> None:
    """The name arrives URL-encoded and decoded into the path: a doubled or leading
    slash must not be merged (a redirect to another user's path), nor lose the user."""
    assert await register(api_client, name) == 204
    assert await register(api_client, "lead") == 204
    path = quote(name, safe="")
    post = await api_client.post(f"/msgs/{path}", json={"content": "mine"}, headers=SIMULATOR_AUTH)
    assert post.status_code == 204
    follow = await api_client.post(
        f"/fllws/{path}", json={"follow": "lead"}, headers=SIMULATOR_AUTH
    )
    assert follow.status_code == 204
    mine = await api_client.get(f"/msgs/{path}", headers=SIMULATOR_AUTH)
    assert [m["user"] for m in await mine.get_json()] == [name]
    follows = await api_client.get(f"/fllws/{path}", headers=SIMULATOR_AUTH)
    assert await follows.get_json() == {"follows": ["lead"]}
    leads = await api_client.get("/msgs/lead", headers=SIMULATOR_AUTH)
    assert await leads.get_json() == []


async def test_messages_round_trip_newest_first(api_client: Client) -> None:
    await register(api_client, "Roger Histand")
    texts = ["first", 'second: "quotes" \\ backslash', "третий 🎉 עברית"]
    for text in texts:
        response = await api_client.post(
            "/msgs/Roger%20Histand", json={"content": text}, headers=SIMULATOR_AUTH
        )
        assert response.status_code == 204
    for path in ("/msgs", "/msgs/Roger%20Histand"):
        response = await api_client.get(path, headers=SIMULATOR_AUTH)
        assert response.status_code == 200
        body = await response.get_json()
        assert [m["content"] for m in body] == list(reversed(texts))
        assert {m["user"] for m in body} == {"Roger Histand"}
        assert all(isinstance(m["pub_date"], int) for m in body)
    limited = await (await api_client.get("/msgs?no=2", headers=SIMULATOR_AUTH)).get_json()
    assert [m["content"] for m in limited] == list(reversed(texts))[:2]


async def test_follow_unfollow_and_list(api_client: Client) -> None:
    for name in ("a", "b", "c"):
        await register(api_client, name)
    for other in ("b", "c", "b"):
        response = await api_client.post("/fllws/a", json={"follow": other}, headers=SIMULATOR_AUTH)
        assert response.status_code == 204
    follows = await (await api_client.get("/fllws/a", headers=SIMULATOR_AUTH)).get_json()
    assert follows == {"follows": ["b", "c"]}
    response = await api_client.post("/fllws/a", json={"unfollow": "b"}, headers=SIMULATOR_AUTH)
    assert response.status_code == 204
    # Unfollowing someone not followed is fine.
    response = await api_client.post("/fllws/a", json={"unfollow": "b"}, headers=SIMULATOR_AUTH)
    assert response.status_code == 204
    follows = await (await api_client.get("/fllws/a?no=10", headers=SIMULATOR_AUTH)).get_json()
    assert follows == {"follows": ["c"]}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/msgs", None),
        ("GET", "/msgs/a", None),
        ("POST", "/msgs/a", {"content": "x"}),
        ("GET", "/fllws/a", None),
        ("POST", "/fllws/a", {"follow": "a"}),
    ],
)
async def test_protected_endpoints_need_simulator_credentials(
    api_client: Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    await register(api_client, "a")
    for headers in (
        {},
        {"Authorization": "Basic d3Jvbmc6d3Jvbmc="},
        {"Authorization": "Bearer x"},
        {"Authorization": "Basic \xff"},  # a byte outside ASCII (headers are latin-1)
        {"Authorization": "Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh\xe9"},
        {"Authorization": "Basic /w=="},  # base64 of a byte that is not UTF-8
    ):
        response = await api_client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 403
        assert await response.get_json() == {
            "status": 403,
            "error_msg": "You are not authorized to use this resource!",
        }
    # ... and an unauthorized request does not move `latest`.
    await api_client.open(f"{path}?latest=99", method=method, json=body)
    assert await (await api_client.get("/latest")).get_json() == {"latest": -1}


async def test_unknown_users_are_404(api_client: Client) -> None:
    await register(api_client, "a")
    for method, path, body in [
        ("GET", "/msgs/ghost", None),
        ("POST", "/msgs/ghost", {"content": "x"}),
        ("GET", "/fllws/ghost", None),
        ("POST", "/fllws/ghost", {"follow": "a"}),
        ("POST", "/fllws/a", {"follow": "ghost"}),
        ("POST", "/fllws/a", {"unfollow": "ghost"}),
    ]:
        response = await api_client.open(
            f"{path}?latest=5", method=method, json=body, headers=SIMULATOR_AUTH
        )
        assert response.status_code == 404, path
        assert (await response.get_json())["status"] == 404
    assert await (await api_client.get("/latest")).get_json() == {"latest": 5}
