"""Transports: HTTP and Socket.IO. They map requests to method calls and render results."""
