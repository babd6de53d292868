"""Auth: users, password hashes, token signing keys; the registration chain."""
