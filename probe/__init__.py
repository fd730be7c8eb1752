"""probe: is Telegram (and the other messengers) reachable from here, and if not, how is it
blocked?"""

__version__ = "0.1.0"
SOFTWARE_NAME = "probe"
