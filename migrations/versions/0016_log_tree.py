"""the access log's Merkle tree: interior nodes and the head's right edge

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-11 00:30:00.000000

``log_nodes`` keeps the hash of every perfect subtree of two or more leaves of the RFC 9162
tree over the log's leaf hashes (level, index), so an inclusion or consistency proof reads
about 2 log2(n) hashes and rehashes nothing; ``log_head.frontier`` holds the hashes of the
right edge (the perfect subtrees the size's set bits name, largest first), so an append adds
its completed nodes without reading any. The upgrade computes both for the entries there.

The hashing is written out here, not imported: this revision keeps meaning what it meant.
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b'\x01' + left + right).digest()


def upgrade() -> None:
    with op.batch_alter_table('log_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frontier', sa.LargeBinary(), nullable=True))
    nodes = op.create_table(
        'log_nodes',
        sa.Column('level', sa.SmallInteger(), nullable=False),
        sa.Column('idx', sa.BigInteger(), nullable=False),
        sa.Column('hash', sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint('level', 'idx', name=op.f('pk_log_nodes')),
    )
    bind = op.get_bind()
    stack: list[tuple[int, bytes]] = []
    pending: list[dict[str, object]] = []
    after, size = -1, 0
    while True:
        rows = bind.execute(
            sa.text(
                'SELECT seq, leaf_hash FROM access_log WHERE seq > :after ORDER BY seq LIMIT :n'
            ),
            {'after': after, 'n': BATCH},
        ).all()
        if not rows:
            break
        for seq, leaf in rows:
            level, node, index = 0, bytes(leaf), int(seq)
            while stack and stack[-1][0] == level:
                node, level, index = _node(stack.pop()[1], node), level + 1, index >> 1
                pending.append({'level': level, 'idx': index, 'hash': node})
            stack.append((level, node))
            size += 1
        after = rows[-1][0]
        if pending:
            op.bulk_insert(nodes, pending)
            pending = []
    bind.execute(
        sa.text('UPDATE log_head SET frontier = :frontier'),
        {'frontier': b''.join(node for _, node in stack)},
    )


def downgrade() -> None:
    op.drop_table('log_nodes')
    with op.batch_alter_table('log_head', schema=None) as batch_op:
        batch_op.drop_column('frontier')
