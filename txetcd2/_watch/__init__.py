"""
Watchers, watch hubs and their listeners.
"""
