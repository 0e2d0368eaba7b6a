"""What every handler shares: building a response at the request's version, and error codes."""

from __future__ import annotations

from .. import apis
from ..errors import Code, error_code, error_message

__all__ = ["response", "Code", "error_code", "error_message", "NO_OPERATIONS"]

# Kafka's "authorized operations not asked for" value, -2**31: bit 31 alone. The codec patches
# these fields (Metadata, DescribeGroups) into bit sets.
NO_OPERATIONS = frozenset({31})


def response(request, **fields):
    """The response body for ``request``, built at its version (fields outside it are ignored
    by the encoder)."""
    klass = apis.response_class(request.api_key)
    return klass(version=request.api_version, **fields)
