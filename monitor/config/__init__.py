"""Configuration: the YAML file users write, typed and validated at load.

Public surface: `load_config(path)` returns a `Config` or raises `ConfigError`,
whose message names the file, the key path and what is wrong.
"""

from monitor.config.loader import ConfigError, default_config_path, load_config
from monitor.config.models import (
    AuthConfig,
    AuthMechanism,
    Config,
    MailboxConfig,
    ProbeMode,
    ProviderConfig,
    Settings,
    StatusPageAccess,
    SubscriptionConfig,
    Thresholds,
    TlsMode,
)

__all__ = [
    "AuthConfig",
    "AuthMechanism",
    "Config",
    "ConfigError",
    "MailboxConfig",
    "ProbeMode",
    "ProviderConfig",
    "Settings",
    "StatusPageAccess",
    "SubscriptionConfig",
    "Thresholds",
    "TlsMode",
    "default_config_path",
    "load_config",
]
