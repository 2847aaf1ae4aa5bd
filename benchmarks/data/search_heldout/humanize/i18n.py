
from __future__ import annotations

import gettext as gettext_module
from threading import local

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    import pathlib

__all__ = ["activate", "deactivate", "decimal_separator", "thousands_separator"]

_TRANSLATIONS: dict[str | None, gettext_module.NullTranslations] = {
    None: gettext_module.NullTranslations()
}
_CURRENT = local()


# Mapping of locale to thousands separator
_THOUSANDS_SEPARATOR: dict[str | None, str] = {
    "de_DE": ".",
    "fr_FR": " ",
    "it_IT": ".",
    "pt_BR": ".",
    "hu_HU": " ",
    "lv": " ",
    "tr_TR": ".",
}

# Mapping of locale to decimal separator
_DECIMAL_SEPARATOR: dict[str | None, str] = {
    "de_DE": ",",
    "fr_FR": ",",
    "it_IT": ",",
    "pt_BR": ",",
    "hu_HU": ",",
    "lv": ",",
    "tr_TR": ",",
}


def _get_default_locale_path() -> pathlib.Path | None:
    package = __spec__ and __spec__.parent
    if not package:
        return None

    import importlib.resources

    with importlib.resources.as_file(importlib.resources.files(package)) as pkg:
        return pkg / "locale"


def get_translation() -> gettext_module.NullTranslations:
    return _TRANSLATIONS.get(getattr(_CURRENT, "locale", None), _TRANSLATIONS[None])


def activate(
    locale: str | None, path: str | os.PathLike[str] | None = None
) -> gettext_module.NullTranslations:
    if locale is None or locale.startswith("en"):
        _CURRENT.locale = None
        return _TRANSLATIONS[None]

    if path is None:
        path = _get_default_locale_path()

    if path is None:
        msg = (
            "Humanize cannot determinate the default location of the 'locale' folder. "
            "You need to pass the path explicitly."
        )
        raise FileNotFoundError(msg)
    if locale not in _TRANSLATIONS:
        translation = gettext_module.translation("humanize", path, [locale])
        _TRANSLATIONS[locale] = translation
    _CURRENT.locale = locale
    return _TRANSLATIONS[locale]


def deactivate() -> None:
    _CURRENT.locale = None


def _gettext(message: str) -> str:
    return get_translation().gettext(message)


def _pgettext(msgctxt: str, message: str) -> str:
    return get_translation().pgettext(msgctxt, message)


def _ngettext(message: str, plural: str, num: int) -> str:
    return get_translation().ngettext(message, plural, num)


def _gettext_noop(message: str) -> str:
    return message


def _ngettext_noop(singular: str, plural: str) -> tuple[str, str]:
    return singular, plural


def _pgettext_noop(msgctxt: str, message: str) -> tuple[str, str]:
    return msgctxt, message


def thousands_separator() -> str:
    return _THOUSANDS_SEPARATOR.get(getattr(_CURRENT, "locale", None), ",")


def decimal_separator() -> str:
    return _DECIMAL_SEPARATOR.get(getattr(_CURRENT, "locale", None), ".")
