"""Authentication (credentials, passwords, login throttling) and permissions."""
