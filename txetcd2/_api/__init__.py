"""
The APIs over a session: key space, admin, auth, status.
"""
