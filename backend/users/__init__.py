"""Accounts: the actions that add users, change their role or Label Studio e-mail, and sign
them in (rows and SQL in backend/store/users.py; roles and hashing in backend/auth.py)."""
