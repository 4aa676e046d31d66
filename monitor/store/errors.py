"""Storage errors the command line reports without importing the database stack."""


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer Delivery Monitor than this one."""
