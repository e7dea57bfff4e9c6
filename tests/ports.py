"""Loopback ports for servers the tests start (the fake Hub, launched apps); stdlib only, so
tests/conftest.py can use it before anything imports huggingface_hub."""

import socket


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
