"""The words of account e-mail, and the paths their links lead to.

Every message says what happened, what the link does, how long it works, and what to do if
the reader did not ask for it. None carries anything from the profile.
"""

from __future__ import annotations

from infomediary.mail import Mail

SIGNUP_PATH = "/signup"
VERIFY_PATH = "/signup/verify"
RESEND_PATH = "/signup/resend"
LOGIN_PATH = "/login"
RESET_REQUEST_PATH = "/password/reset"
RESET_PATH = "/password/reset/new"
CHANGE_PATH = "/account/email/confirm"
ACCOUNT_PATH = "/account"
SIGN_OFF = "\n\n-- \nInfomediary: your profile is yours.\n"


def link(base_url: str, path: str, token: str | None = None) -> str:
    return f"{base_url}{path}" + (f"?token={token}" if token else "")


def verify(to: str, base_url: str, token: str) -> Mail:
    return Mail(
        to,
        "Confirm your e-mail address",
        "Someone (we hope you) created an Infomediary account with this address. To confirm "
        "it and log in, open this link within 24 hours:\n\n"
        f"{link(base_url, VERIFY_PATH, token)}\n\n"
        "The link works once. If you did not sign up, ignore this message: an unconfirmed "
        "account can share nothing with anyone, and you can take it over at any time by "
        f"resetting its password at {link(base_url, RESET_REQUEST_PATH)}." + SIGN_OFF,
    )


def already_registered(to: str, base_url: str) -> Mail:
    return Mail(
        to,
        "Someone tried to sign up with your address",
        "Someone tried to create an Infomediary account with this address, but it already "
        "has one. Nothing was changed.\n\n"
        f"If it was you, log in at {link(base_url, LOGIN_PATH)}. Forgot your password? Reset "
        f"it at {link(base_url, RESET_REQUEST_PATH)}. Never got the confirmation link? Ask "
        f"for a new one at {link(base_url, RESEND_PATH)}.\n\n"
        "If it was not you, you need not do anything: your account is as it was." + SIGN_OFF,
    )


def already_verified(to: str, base_url: str) -> Mail:
    return Mail(
        to,
        "Your address is already confirmed",
        "Someone asked for a new confirmation link for this address, but it is already "
        f"confirmed. Log in at {link(base_url, LOGIN_PATH)}; forgot your password? Reset it "
        f"at {link(base_url, RESET_REQUEST_PATH)}.\n\n"
        "If it was not you, you need not do anything." + SIGN_OFF,
    )


def no_account(to: str, base_url: str, what: str) -> Mail:
    return Mail(
        to,
        "About your request to Infomediary",
        f"Someone asked for {what} for this address, but no Infomediary account uses it. If "
        "it was you, perhaps you signed up with another address; or create an account at "
        f"{link(base_url, SIGNUP_PATH)}.\n\n"
        "If it was not you, ignore this message." + SIGN_OFF,
    )


def reset(to: str, base_url: str, token: str) -> Mail:
    return Mail(
        to,
        "Reset your password",
        "Someone (we hope you) asked to reset the password of your Infomediary account. To "
        "choose a new one, open this link within one hour:\n\n"
        f"{link(base_url, RESET_PATH, token)}\n\n"
        "The link works once, and every session of your account ends when you use it. If you "
        "did not ask, ignore this message: your password stays as it is." + SIGN_OFF,
    )


def change_confirm(to: str, base_url: str, token: str) -> Mail:
    return Mail(
        to,
        "Confirm your new e-mail address",
        "Someone (we hope you) asked to use this address for their Infomediary account. To "
        "confirm it, open this link within 24 hours:\n\n"
        f"{link(base_url, CHANGE_PATH, token)}\n\n"
        "The link works once. If you did not ask, ignore this message: nothing changes." + SIGN_OFF,
    )


def change_taken(to: str, base_url: str) -> Mail:
    return Mail(
        to,
        "Someone tried to use your address",
        "Someone asked to move another Infomediary account to this address, but this address "
        "already has an account. Nothing was changed.\n\n"
        f"If it was you, log in with this address at {link(base_url, LOGIN_PATH)}. If it was "
        "not you, you need not do anything: your account is as it was." + SIGN_OFF,
    )


def change_announced(to: str, base_url: str, new_address: str) -> Mail:
    return Mail(
        to,
        "A change of your e-mail address was requested",
        "Someone logged in to your Infomediary account asked to change its e-mail address to "
        f"{new_address}. It changes only when confirmed from a link sent to that address.\n\n"
        "If it was not you, change your password now on the Account page "
        f"({link(base_url, ACCOUNT_PATH)}) or reset it at "
        f"{link(base_url, RESET_REQUEST_PATH)}: either ends every other session and cancels "
        "the change." + SIGN_OFF,
    )
