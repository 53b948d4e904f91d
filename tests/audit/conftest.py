"""The audit tests reuse the delta tests' 60-customer export."""

from tests.delta.conftest import generations, tls_dir

__all__ = ["generations", "tls_dir"]
