"""labkit: the helpers the mlserver-lab notebooks import (one module, one job)."""
