"""SimVP forecasters: encoder, translator (13 families), decoder, optional quantizer."""

from svqcast.models.complexity import count_parameters, forward_macs, summary
from svqcast.models.outputs import ForecastOutput
from svqcast.models.simvp import Decoder, Encoder, SimVP
from svqcast.models.translators import TRANSLATORS, build_translator

__all__ = [
    "TRANSLATORS",
    "Decoder",
    "Encoder",
    "ForecastOutput",
    "SimVP",
    "build_translator",
    "count_parameters",
    "forward_macs",
    "summary",
]
