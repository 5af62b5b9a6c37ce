"""Bitcoin: the payout's RBF fee ladder (party-signed rungs, bump state).

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("btc_escrows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payout_ladder", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("btc_escrows", schema=None) as batch_op:
        batch_op.drop_column("payout_ladder")
