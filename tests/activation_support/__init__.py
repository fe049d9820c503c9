"""Test helpers for activation: a real local HTTP destination and small warehouse fixtures."""
