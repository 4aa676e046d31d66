"""Delivery Monitor: tells teams whether their email really gets through."""

__version__ = "0.1.0"
