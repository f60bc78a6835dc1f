"""
Recipes built on the public client and watcher: a fair lock, leader
election, service registration and a mirror of a prefix.
"""
