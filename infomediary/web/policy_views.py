"""The policy editor: the grid of categories and purposes, per-supplier rules, removing any
rule, templates as starting points, the postal-district opt-in and "What can a supplier see?"."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext
from sqlalchemy import select

from infomediary.errors import ValidationFailed
from infomediary.models import Supplier
from infomediary.services import customer_policy, decisions, policy_store
from infomediary.statuses import SupplierKind, SupplierStatus
from infomediary.web.db import db
from infomediary.web.security import context, instance, login_required
from policies.model import PURPOSES, Mode, RecipientKind
from policies.taxonomy import CATEGORIES
from policies.templates import TEMPLATES, template_description
from policies.validation import describe_rule

bp = Blueprint("policy", __name__)

#: What each mode means, in the words of the grid's cells.
MODE_CHOICES: dict[str, Any] = {
    Mode.NEVER.value: lazy_gettext("not at all"),
    Mode.AGGREGATE.value: lazy_gettext("only in anonymous counts"),
    Mode.PSEUDONYMOUS.value: lazy_gettext("offers under a pseudonym"),
    Mode.DIRECT.value: lazy_gettext("with my name"),
}
NO_RULE = lazy_gettext("no rule (default: not shared)")


def _customer_id() -> str:
    return str(session["customer_id"])


def _page(
    errors: dict[str, str] | None = None,
    *,
    status: int = 200,
    cells: dict[str, str] | None = None,
    supplier_form: dict[str, str] | None = None,
    preview: object = None,
    preview_supplier: Supplier | None = None,
    preview_purpose: str = "",
) -> ResponseReturnValue:
    s = db()
    customer_id = _customer_id()
    policy = policy_store.load_policy(s, instance(), customer_id)
    known = customer_policy.known_suppliers(s, customer_id, policy)
    names = {k.id: k.name for k in known}
    grid = {
        customer_policy.cell_field(c, p): mode
        for (c, p), mode in customer_policy.grid_of(policy).items()
    }
    grid.update(cells or {})
    others = customer_policy.other_rules(policy)
    active = (
        s.execute(
            select(Supplier)
            .where(Supplier.status == SupplierStatus.ACTIVE, Supplier.kind == SupplierKind.SUPPLIER)
            .order_by(Supplier.name)
        )
        .scalars()
        .all()
    )
    return render_template(
        "policy.html",
        policy=policy,
        grid=grid,
        cell_field=customer_policy.cell_field,
        grid_categories=customer_policy.GRID_CATEGORIES,
        supplier_rules=[r for r in others if r.recipient.kind == RecipientKind.SUPPLIER],
        general_rules=[r for r in others if r.recipient.kind != RecipientKind.SUPPLIER],
        rule_key=customer_policy.rule_key,
        describe=lambda rule: describe_rule(rule, names),
        names=names,
        known_suppliers=[k for k in known if k.kind == SupplierKind.SUPPLIER],
        supplier_form=supplier_form or {},
        modes=MODE_CHOICES,
        no_rule=NO_RULE,
        templates={name: template_description(name) for name in TEMPLATES},
        purposes=PURPOSES,
        CATEGORIES=CATEGORIES,
        errors=errors or {},
        preview=preview,
        preview_supplier=preview_supplier,
        preview_purpose=preview_purpose,
        preview_suppliers=active,
        district=customer_policy.district_counting(policy),
    ), status


def _saved() -> str:
    return str(gettext("Saved. It takes effect on the very next access."))


@bp.get("/policy")
@login_required
def index() -> ResponseReturnValue:
    return _page()


@bp.post("/policy/grid")
@login_required
def save_grid() -> ResponseReturnValue:
    """The whole grid in one form: each cell a mode or nothing (no rule)."""
    cells = {k: v for k, v in request.form.items() if k.startswith("cell-")}
    try:
        customer_policy.save_grid(db(), instance(), _customer_id(), cells, context())
    except ValidationFailed as exc:
        return _page(exc.errors, status=400, cells=cells)
    flash(_saved())
    return redirect(url_for("policy.index") + "#grid")


@bp.post("/policy/supplier-rule")
@login_required
def supplier_rule() -> ResponseReturnValue:
    form = {k: request.form.get(k, "") for k in ("supplier", "category", "purpose", "mode")}
    try:
        customer_policy.set_supplier_rule(
            db(),
            instance(),
            _customer_id(),
            supplier_id=form["supplier"],
            category=form["category"],
            purpose=form["purpose"],
            mode=form["mode"],
            ctx=context(),
        )
    except ValidationFailed as exc:
        return _page(exc.errors, status=400, supplier_form=form)
    flash(_saved())
    return redirect(url_for("policy.index") + "#supplier-rules")


@bp.post("/policy/rule/remove")
@login_required
def remove_rule() -> ResponseReturnValue:
    key = customer_policy.RuleKey(
        category=request.form.get("category", ""),
        purpose=request.form.get("purpose", ""),
        recipient_kind=request.form.get("recipient_kind", ""),
        recipient_value=request.form.get("recipient_value", ""),
    )
    try:
        customer_policy.remove_rule(db(), instance(), _customer_id(), key, context())
    except ValidationFailed as exc:
        return _page(exc.errors, status=400)
    flash(gettext("Rule removed. It takes effect on the very next access."))
    return redirect(url_for("policy.index"))


@bp.post("/policy/template")
@login_required
def choose_template() -> ResponseReturnValue:
    """A template replaces the whole policy, so it is applied only with ``confirm=yes``."""
    name = request.form.get("template", "")
    if name not in TEMPLATES:
        return _page({"template": gettext("Choose one of the templates in the list.")}, status=400)
    if request.form.get("confirm") != "yes":
        return _page(
            {
                "confirm": gettext(
                    "Tick the box to confirm: a template replaces your grid and all your rules."
                )
            },
            status=400,
        )
    try:
        customer_policy.apply_template(db(), instance(), _customer_id(), name, context())
    except ValidationFailed as exc:
        return _page(exc.errors, status=400)
    flash(gettext("Template applied: it replaced your grid and your rules."))
    return redirect(url_for("policy.index"))


@bp.post("/policy/rule")
@login_required
def change_rule() -> ResponseReturnValue:
    """One any-supplier rule (the grid saves many at once)."""
    try:
        customer_policy.set_rule(
            db(),
            instance(),
            _customer_id(),
            category=request.form.get("category", ""),
            purpose=request.form.get("purpose", ""),
            mode=request.form.get("mode", ""),
            ctx=context(),
        )
    except ValidationFailed as exc:
        return _page(exc.errors, status=400)
    flash(_saved())
    return redirect(url_for("policy.index"))


@bp.post("/policy/district")
@login_required
def choose_district_counting() -> ResponseReturnValue:
    """The postal-district control: a checked box sends ``district=yes``, an unchecked one
    nothing."""
    choice = request.form.get("district")
    if choice not in (None, "yes"):
        return _page({"district": gettext("Tick the box or leave it empty.")}, status=400)
    customer_policy.set_district_counting(
        db(), instance(), _customer_id(), allowed=choice == "yes", ctx=context()
    )
    flash(gettext("Your choice is saved. It takes effect on the very next count."))
    return redirect(url_for("policy.index") + "#district")


@bp.get("/policy/preview")
@login_required
def preview() -> ResponseReturnValue:
    s = db()
    supplier = s.get(Supplier, request.args.get("supplier", ""))
    purpose = request.args.get("purpose", "")
    if (
        supplier is None
        or supplier.status != SupplierStatus.ACTIVE
        or supplier.kind != SupplierKind.SUPPLIER
    ):
        return _page(
            {"preview-supplier": gettext("Choose a supplier.")},
            status=400,
            preview_purpose=purpose,
        )
    try:
        verdict = decisions.preview(s, instance(), _customer_id(), supplier, purpose)
    except ValidationFailed:
        return _page(
            {"preview-purpose": gettext("Choose a purpose.")},
            status=400,
            preview_supplier=supplier,
        )
    return _page(preview=verdict, preview_supplier=supplier, preview_purpose=purpose)


@bp.get("/consents/preview")
@login_required
def old_preview() -> ResponseReturnValue:
    """The preview's former address."""
    args: dict[str, Any] = dict(request.args.items())
    return redirect(url_for("policy.preview", **args), code=301)
