"""indexes for deleting what expired: codes, tokens, e-mailed links, answers, finished jobs

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-21 00:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index, table, columns): what the housekeeping job's range deletes read.
INDEXES = (
    ("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"]),
    ("ix_oauth_tokens_expires_at", "oauth_tokens", ["expires_at"]),
    ("ix_oauth_tokens_refresh_expires_at", "oauth_tokens", ["refresh_expires_at"]),
    ("ix_email_tokens_expires_at", "email_tokens", ["expires_at"]),
    ("ix_released_answers_epoch", "released_answers", ["epoch"]),
    ("ix_jobs_status_finished_at", "jobs", ["status", "finished_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
