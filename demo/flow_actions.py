"""Python actions the demo flows call with ``{type: action, action: NAME}``.

``flows/actions.py`` imports this module at start-up, so the decorators below
register each function under its action name. Each receives the element's
``inputs`` as keyword arguments and returns a dict whose keys become flow
variables. They stand in for calls to real systems (a directory service, a
courier's API) and only log what they would do.
"""
import hashlib
import logging
import re

from django.contrib.auth import get_user_model

import flows

log = logging.getLogger(__name__)


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "", (text or "").lower())


@flows.action("provision_accounts", returns=("username", "mailbox", "accounts"))
def provision_accounts(first_name, last_name, email):
    """Create the directory account and mailbox for a new hire (simulated)."""
    username = f"{_slug(first_name)[:1]}{_slug(last_name)}" or _slug(email.split("@")[0])
    mailbox = f"{username}@corp.example.com"
    log.info("provisioned accounts for %s %s: %s, %s", first_name, last_name, username, mailbox)
    return {"username": username, "mailbox": mailbox, "accounts": ["directory", "mail", "chat"]}


@flows.action("book_courier", returns=("tracking_number",))
def book_courier(employee_id, laptop_model=None, accessories=None):
    """Book a courier for the equipment (simulated): returns a tracking number."""
    items = [i for i in [laptop_model, *(accessories or [])] if i]
    digest = hashlib.sha1(f"{employee_id}:{','.join(items)}".encode()).hexdigest()[:10].upper()
    tracking = f"BTN-{digest}"
    log.info("courier booked for employee %s (%s): %s", employee_id, ", ".join(items) or "standard kit", tracking)
    return {"tracking_number": tracking}


@flows.action("user_contact", returns=("assignee", "email", "username"))
def user_contact(user_id=None, fallback=""):
    """Who a user id is: ``assignee`` ("user:NAME", else ``fallback``), ``email``, ``username``."""
    user = None
    if user_id not in (None, ""):
        try:
            user = get_user_model().objects.filter(pk=int(user_id), is_active=True).first()
        except (TypeError, ValueError):
            user = None
    if user is None:
        return {"assignee": fallback, "email": "", "username": ""}
    return {"assignee": f"user:{user.get_username()}", "email": user.email or "", "username": user.get_username()}
