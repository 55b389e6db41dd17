"""Unit conversions between a file's units and a checkpoint's, through pint with the CF unit
registry of cf_xarray (it parses udunits strings such as ``"K"``, ``"degC"``,
``"degrees_Celsius"``, ``"m s-1"``, ``"m/s"``, ``"%"`` and ``"1"``).

pint is imported on first use, so ``import svqcast`` stays fast.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _registry():
    from cf_xarray.units import units  # pint's UnitRegistry with the CF definitions

    return units


@lru_cache(maxsize=256)
def conversion(from_units: str, to_units: str) -> tuple[float, float] | None:
    """``(scale, offset)`` such that ``value_in_to = value_in_from * scale + offset``.

    Equal strings give ``(1.0, 0.0)`` without parsing. Units of the same dimensionality give
    their conversion (affine for temperatures: K -> degC is ``(1.0, -273.15)``). Unparsable
    or incompatible units give None.
    """
    if from_units == to_units:
        return (1.0, 0.0)
    try:
        reg = _registry()
        src, dst = reg.Unit(from_units), reg.Unit(to_units)
        if src.dimensionality != dst.dimensionality:
            return None
        offset = float(reg.Quantity(0.0, src).to(dst).magnitude)
        if offset == 0.0:
            scale = float(reg.Quantity(1.0, src).to(dst).magnitude)
        else:  # affine: the slope over a wide span keeps it exact to float64 precision
            span = 1e6
            scale = (float(reg.Quantity(span, src).to(dst).magnitude) - offset) / span
    except Exception:  # noqa: BLE001 - pint raises many kinds for unparsable strings
        return None
    if scale == 1.0 and offset == 0.0:
        return (1.0, 0.0)  # spellings of the same unit ("m s-1", "m/s")
    return (scale, offset)
