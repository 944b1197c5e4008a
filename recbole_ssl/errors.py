"""recbole_ssl.errors: the plugin's user errors and the config checks that raise them.

The ground floor of the package: it imports nothing of the plugin, so every model,
trainer and data module can use it.
"""


class RecBoleSSLError(ValueError):
    """A user error (bad name, path or config value): reported in one line by the CLI."""


class ConfigError(RecBoleSSLError):
    """A config key has a value the plugin or RecBole cannot use."""


def check_integer(key, value, minimum):
    """Raise a :class:`ConfigError` naming ``key`` unless ``value`` is an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")


def check_number(key, value, low, high=None, low_open=False, high_open=False):
    """Raise a :class:`ConfigError` naming ``key`` unless ``value`` is a real number
    ``>= low`` (``> low`` with ``low_open``) and, if given, ``<= high`` (``< high``
    with ``high_open``)."""
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if valid:
        valid = value > low if low_open else value >= low
        if high is not None:
            valid = valid and (value < high if high_open else value <= high)
    if not valid:
        if high is not None:
            bound = f"in [{low}, {high}{')' if high_open else ']'}"
        else:
            bound = f"{'>' if low_open else '>='} {low}"
        raise ConfigError(f"{key} must be a number {bound}, got {value!r}")


def check_choice(key, value, allowed):
    """Raise a :class:`ConfigError` naming ``key`` unless ``value`` is in ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {list(allowed)}, got {value!r}")


class ModelNotFoundError(RecBoleSSLError):
    """No plugin or RecBole model has the requested name."""


class DatasetNotFoundError(RecBoleSSLError):
    """The dataset's atomic files are in none of the searched folders."""


class AtomicFileError(RecBoleSSLError):
    """An atomic file (``.inter``, ``.item``, ...) RecBole cannot read as intended."""
