"""The HTML side: catalogue page, contact form, legacy redirects, uploads, health."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from werkzeug.wrappers import Response as WerkzeugResponse

from legacy_flask.db import get_session
from legacy_flask.errors import ValidationError
from legacy_flask.models import ContactMessage, Product
from legacy_flask.security import current_user
from legacy_flask.validation import Field, email, string, validate

bp = Blueprint("pages", __name__)
log = logging.getLogger(__name__)

_CONTACT = {
    "name": Field(string(1, 120)),
    "email": Field(email),
    "message": Field(string(1, 5000)),
}


@bp.app_context_processor
def _template_user() -> dict[str, Any]:
    # every page's header shows who is signed in
    return {"user": current_user()}


@bp.get("/")
def index() -> str:
    products = get_session().scalars(
        sa.select(Product)
        .where(Product.is_active.is_(True))
        .order_by(Product.category, Product.name, Product.id)
    )
    return render_template("index.html", products=list(products), form={}, errors={})


@bp.post("/contact")
def contact() -> Any:
    # a blank form field is a missing one; extra fields (a submit button's name) are ignored
    form = {key: request.form[key] for key in _CONTACT if request.form.get(key, "").strip()}
    try:
        data = validate(form, _CONTACT)
    except ValidationError as exc:
        page = render_template("contact.html", form=request.form, errors=exc.fields)
        return page, 400
    session = get_session()
    message = ContactMessage(**data)
    session.add(message)
    session.commit()
    log.info("contact message %d from %s", message.id, message.email)
    return redirect(url_for("pages.contact_thanks"), 303)


@bp.get("/contact/thanks")
def contact_thanks() -> str:
    return render_template("contact_thanks.html")


@bp.get("/products/<int:product_id>")
def product_page(product_id: int) -> WerkzeugResponse:
    # old public links: the product page became the API resource; existence is the API's call
    return redirect(url_for("products.get_product", product_id=product_id), 301)


@bp.get("/uploads/<path:filename>")
def uploaded_file(filename: str) -> Response:
    # send_from_directory refuses paths that escape the directory
    return send_from_directory(current_app.config["UPLOAD_DIR"], filename)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
