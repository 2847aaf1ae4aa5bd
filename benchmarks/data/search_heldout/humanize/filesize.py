
from __future__ import annotations

__lazy_modules__ = {"humanize.i18n"}

from humanize.i18n import _gettext as _
from humanize.i18n import _gettext_noop as N_

suffixes = {
    "decimal": (
        N_("kB"),
        N_("MB"),
        N_("GB"),
        N_("TB"),
        N_("PB"),
        N_("EB"),
        N_("ZB"),
        N_("YB"),
        N_("RB"),
        N_("QB"),
    ),
    "binary": (
        N_("KiB"),
        N_("MiB"),
        N_("GiB"),
        N_("TiB"),
        N_("PiB"),
        N_("EiB"),
        N_("ZiB"),
        N_("YiB"),
        N_("RiB"),
        N_("QiB"),
    ),
    "gnu": "KMGTPEZYRQ",
}


def naturalsize(
    value: float | str,
    binary: bool = False,
    gnu: bool = False,
    format: str = "%.1f",
) -> str:
    if gnu:
        suffix = suffixes["gnu"]
    elif binary:
        suffix = suffixes["binary"]
    else:
        suffix = suffixes["decimal"]

    base = 1024 if (gnu or binary) else 1000
    bytes_ = float(value)
    abs_bytes = abs(bytes_)

    if abs_bytes == 1 and not gnu:
        return _("%d Byte") % int(bytes_)

    if abs_bytes < base:
        return f"{int(bytes_)}B" if gnu else _("%d Bytes") % int(bytes_)

    from math import log

    exp = int(min(log(abs_bytes, base), len(suffix)))
    # The suffix is chosen from the unrounded byte count, but `format` rounds the
    # mantissa afterward; rounding can push it up to `base` (e.g. 999999 is
    # 999.999 kB, which formats to "1000.0 kB"). When that happens and a larger
    # suffix is available, step up one suffix so the result reads "1.0 MB".
    if exp < len(suffix) and abs(float(format % (abs_bytes / (base**exp)))) >= base:
        exp += 1
    space = "" if gnu else " "
    ret: str = format % (bytes_ / (base**exp)) + space + _(suffix[exp - 1])
    return ret
