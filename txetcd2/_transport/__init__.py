"""
One request to one member: the agent, the exchange, deadlines, TLS, line streams.
"""
