"""Pure decisions: no I/O, no clock reads. Adapters pass time and facts in."""
