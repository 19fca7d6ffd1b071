"""callvault: the lifecycle of call-center recordings, from disclosure evidence to provable erasure."""

__version__ = "0.1.0"
