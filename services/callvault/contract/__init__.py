"""The external contract in code: every event, command and dead letter of CONTRACT.md."""
