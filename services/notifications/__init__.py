"""Notifications: the happy and the sad letters, stored and delivered over SMTP."""
