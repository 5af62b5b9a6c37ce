"""Marketplace: payment methods, verification, reputation, prices."""
