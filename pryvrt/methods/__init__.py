"""API methods. Importing this package registers every method in ``registry.REGISTRY``."""

from pryvrt.methods import (  # noqa: F401
    access,
    account,
    attachments,
    batch,
    channels,
    events,
    events_batch,
    folders,
    series,
    shares,
    tokens,
)
from pryvrt.methods.registry import REGISTRY, Auth, Method, call, method

__all__ = ["REGISTRY", "Auth", "Method", "call", "method"]
