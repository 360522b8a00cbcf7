"""Domain exceptions. The web layer maps them to HTTP responses in one place
(:mod:`infomediary.web.errors`); the CLI prints their message."""

from __future__ import annotations


class ServiceError(Exception):
    """Base: ``code`` is machine-readable, ``status`` the HTTP status the edge should use."""

    code = "error"
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationFailed(ServiceError):
    code = "validation_failed"
    status = 400

    def __init__(self, errors: dict[str, str], message: str = "Some fields need attention."):
        super().__init__(message)
        self.errors = errors


class EmailTaken(ServiceError):
    code = "email_taken"
    status = 409


class InvalidCredentials(ServiceError):
    code = "invalid_credentials"
    status = 401


class NotFound(ServiceError):
    code = "not_found"
    status = 404


class EmailNotVerified(ServiceError):
    """An unverified account asked for something that needs a confirmed address."""

    code = "email_unverified"
    status = 403


class InvalidLink(ServiceError):
    """An e-mailed link that is unknown, used, expired or meant for something else."""

    code = "invalid_link"
    status = 400


class MailUnavailable(ServiceError):
    """The mail backend did not take a message; nothing the customer did is lost."""

    code = "mail_unavailable"
    status = 503
