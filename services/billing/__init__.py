"""Billing: wallets and wallet operations; one payment decision per order."""
