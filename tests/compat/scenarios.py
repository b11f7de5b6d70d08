"""What a user does with each harness app over HTTP: run once against the app under gunicorn
directly, once against `gateway serve` in front of it; the two transcripts must be the same.

Each scenario appends one line per request to `steps` (method, path, status and the headers a
browser acts on) and asserts what a user would check by eye; `name` is the same in both runs,
each of which has a database of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

Scenario = Callable[[httpx.Client, list[str], str], None]
# what a client acts on besides the status and the body
_SEEN_HEADERS = ("location", "content-type", "access-control-allow-origin", "www-authenticate")


def _expect(response: httpx.Response, status: int, steps: list[str]) -> httpx.Response:
    seen = [f"{h}={response.headers[h]}" for h in _SEEN_HEADERS if h in response.headers]
    cookies = sorted(response.cookies.keys())
    line = f"{response.request.method} {response.request.url.path} -> {response.status_code} {' '.join(seen)}"
    # an absolute URL the app built names the server it was asked on: the same, bar the port
    base = f"{response.request.url.scheme}://{response.request.url.netloc.decode()}"
    line = line.replace(base, "<this server>")
    steps.append(line + (f" cookies={','.join(cookies)}" if cookies else ""))
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: {response.status_code}, expected {status}: "
        f"{response.text[:300]}"
    )
    return response


def flaskr(client: httpx.Client, steps: list[str], name: str) -> None:
    r = _expect(client.post("/auth/register", data={"username": name, "password": "pw"}), 302, steps)
    assert r.headers["location"] == "/auth/login", r.headers["location"]
    r = _expect(client.post("/auth/login", data={"username": name, "password": "pw"}), 302, steps)
    assert "session" in r.cookies, "login set no session cookie"
    _expect(client.post("/create", data={"title": f"post by {name}", "body": "hello"}), 302, steps)
    page = _expect(client.get("/"), 200, steps).text
    assert f"post by {name}" in page, "the new post is not on the index page"
    _expect(client.get("/auth/logout"), 302, steps)
    r = _expect(client.get("/create"), 302, steps)  # login_required sends a stranger to the login page
    assert r.headers["location"] == "/auth/login", r.headers["location"]


def realworld(client: httpx.Client, steps: list[str], name: str) -> None:
    user = {"username": name, "email": f"{name}@example.com", "password": "pw-secret"}
    _expect(client.post("/api/users", json={"user": user}), 200, steps)
    login = {"email": user["email"], "password": user["password"]}
    token = _expect(client.post("/api/users/login", json={"user": login}), 200, steps).json()["user"]["token"]
    auth = {"Authorization": f"Token {token}"}
    article = {"title": f"Dragons {name}", "description": "how", "body": "believe", "tagList": ["dragons"]}
    slug = _expect(client.post("/api/articles", json={"article": article}, headers=auth), 200, steps).json()[
        "article"
    ]["slug"]
    listed = _expect(client.get("/api/articles", params={"author": name}), 200, steps).json()
    assert listed["articlesCount"] == 1, listed
    _expect(client.get(f"/api/articles/{slug}"), 200, steps)
    _expect(client.get("/api/user"), 401, steps)  # no token: Flask-JWT-Extended's own answer
    # a CORS request from the front end its settings whitelist: Flask-Cors answers it (or, after
    # this sequence, does not: either way the transcript must be the same with the gateway)
    origin = {"Origin": "http://localhost:4100"}
    _expect(client.get("/api/tags", headers=origin), 200, steps)
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    _expect(client.options("/api/articles", headers=preflight), 200, steps)


SCENARIOS: dict[str, Scenario] = {"flaskr": flaskr, "realworld": realworld}


def flasky(client: httpx.Client, steps: list[str], name: str) -> None:
    home = _expect(client.get("/"), 200, steps).text
    assert "Stranger" in home, "the home page does not greet a stranger"
    _expect(client.get("/api/v1/posts/"), 401, steps)  # Flask-HTTPAuth without credentials
    form = {"email": f"{name}@flasky.dev", "username": name, "password": "cat", "password2": "cat"}
    r = _expect(client.post("/auth/register", data=form), 302, steps)
    assert r.headers["location"].endswith("/auth/login"), r.headers["location"]
    r = _expect(client.post("/auth/login", data={"email": form["email"], "password": "cat"}), 302, steps)
    assert "session" in r.cookies or "remember_token" in r.cookies or client.cookies, "login set no cookie"
    # not confirmed yet: Flask-Login's before_app_request sends the user to /auth/unconfirmed
    r = _expect(client.get("/"), 302, steps)
    assert r.headers["location"].endswith("/auth/unconfirmed"), r.headers["location"]
    _expect(client.get("/auth/unconfirmed"), 200, steps)
    _expect(client.get("/auth/logout"), 302, steps)
    _expect(client.get("/user/nobody-by-that-name"), 404, steps)  # the app's HTML 404 page


SCENARIOS["flasky"] = flasky
