"""
The version of txetcd2: the one place it is written (``setup.cfg`` reads it from here).
"""

__version__ = "0.1.0.dev0"
