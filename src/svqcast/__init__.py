"""svqcast: spatio-temporal forecasting with differentiable sparse soft vector quantization.

Heavy pieces (Lightning, xarray, matplotlib) are imported lazily by the modules that need
them, so ``import svqcast`` stays fast.
"""

from svqcast.errors import ConfigError, DataError, SvqcastError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "SvqcastError", "__version__"]
