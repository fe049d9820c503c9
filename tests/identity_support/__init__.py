"""Test support for identity quality: an adversarial landing generator and its oracle."""
