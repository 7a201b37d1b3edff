"""DuckDB storage: the only package that talks to the database."""

from backend.store.db import Store, StoreLockedError, holder_of

__all__ = ["Store", "StoreLockedError", "holder_of"]
