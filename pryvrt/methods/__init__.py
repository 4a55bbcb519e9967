"""API methods. Importing this package registers every method in ``registry.REGISTRY``."""

from pryvrt.methods import account, batch, channels, tokens  # noqa: F401
from pryvrt.methods.registry import REGISTRY, Auth, Method, call, method

__all__ = ["REGISTRY", "Auth", "Method", "call", "method"]
