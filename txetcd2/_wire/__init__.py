"""
Records and rules, no I/O: errors, models, keys and their encodings, credentials.
"""
