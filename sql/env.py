"""Alembic environment for ams: always run programmatically by amslib.store.migrate.

The caller passes an open SQLAlchemy connection in ``config.attributes``;
there is no alembic.ini and no URL here, so credentials never reach this file.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=None,
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
