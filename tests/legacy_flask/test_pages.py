"""The HTML side: catalogue, contact form, the url_for redirect and static files."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from legacy_flask.db import get_engine
from legacy_flask.models import ContactMessage
from tests.legacy_flask.conftest import login

MESSAGE = {"name": "Carol", "email": "carol@example.com", "message": "Do you ship abroad?"}


def stored_messages(app: Flask) -> list[tuple[str, str, str]]:
    with get_engine(app).connect() as conn:
        rows = conn.execute(
            sa.select(ContactMessage.name, ContactMessage.email, ContactMessage.message)
        )
        return [tuple(row) for row in rows]


def test_catalogue_page(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<title>Catalogue · Demo Shop</title>" in html
    for category in ("books", "electronics", "garden", "home", "sports", "toys"):
        assert f"<h2>{category}</h2>" in html
    assert '<a href="/products/1">Classic Novel</a>' in html
    assert "$226.29" in html
    assert "Deluxe Poetry Collection" not in html  # discontinued
    assert "out of stock" in html
    assert '<form class="contact" method="post" action="/contact">' in html
    # self-contained: no CDN, the stylesheet is the app's own
    assert "http://" not in html and "https://" not in html
    assert 'href="/static/style.css"' in html
    with client.get("/static/style.css") as stylesheet:
        assert stylesheet.status_code == 200
    assert 'href="/auth/login">Sign in</a>' in html

    login(client, "alice@example.com", "alice-password")
    assert "Signed in as Alice Anderson" in client.get("/").get_data(as_text=True)


def test_contact_form_post_redirects_to_thanks(app: Flask, client: FlaskClient) -> None:
    response = client.post("/contact", data={**MESSAGE, "email": " Carol@Example.com ",
                                             "submit": "Send"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/contact/thanks"
    assert stored_messages(app) == [("Carol", "carol@example.com", "Do you ship abroad?")]

    thanks = client.get("/contact/thanks")
    assert thanks.status_code == 200 and thanks.mimetype == "text/html"
    assert "<h1>Thank you</h1>" in thanks.get_data(as_text=True)


def test_contact_form_with_errors_is_shown_again(app: Flask, client: FlaskClient) -> None:
    response = client.post("/contact", data={"name": "  ", "email": "nope", "message": "Hi"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Name is required" in html
    assert "Email must be a valid email address" in html
    assert 'value="nope"' in html  # what was typed is kept
    assert ">Hi</textarea>" in html
    assert stored_messages(app) == []


def test_product_page_redirects_to_the_api(client: FlaskClient) -> None:
    response = client.get("/products/7")
    assert response.status_code == 301
    assert response.headers["Location"] == "/api/products/7"
    assert client.get("/products/7", follow_redirects=True).get_json()["id"] == 7
