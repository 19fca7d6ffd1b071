"""The one way a command handler says no."""


class CommandRefused(Exception):
    """A well-formed command that cannot be carried out; its message goes into a dead letter."""
