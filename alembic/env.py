"""Alembic environment: the URL comes from the config (set by app.store.migrate) or BUMPFIT_DATABASE_URL."""

from logging.config import fileConfig

from alembic import context

from app.settings import get_settings
from app.store.db import make_engine
from app.store.models import Base

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

url = config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run() -> None:
    """Run the migrations online, with batch mode on SQLite for ALTERs."""
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
