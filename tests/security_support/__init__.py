"""Helpers shared by the security tests (file permissions seen from another user)."""
