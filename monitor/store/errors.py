"""Storage errors the command line reports without importing the database stack."""


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer Delivery Monitor than this one."""


class SecretKeyError(RuntimeError):
    """No usable key for the subscription secrets at rest: `MONITOR_SECRET_KEY` is
    missing where it is required (PostgreSQL), is not a Fernet key, or does not
    open what the database holds (the key was replaced rather than rotated)."""
