"""The `callvault` command: one module per verb group, thin over the library."""
