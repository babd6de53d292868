"""Orders: orders and their status."""
