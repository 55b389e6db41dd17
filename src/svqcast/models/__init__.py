"""SimVP forecasters: encoder, translator (13 families), decoder, optional quantizer."""

from svqcast.models.outputs import ForecastOutput

__all__ = ["ForecastOutput"]
