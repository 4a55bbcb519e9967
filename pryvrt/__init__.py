"""pryvrt: a real-time event server (the Pryv activity API, in Python)."""

__version__ = "0.1.0"
API_VERSION = "1.0.0"
