"""The faust worker: topics, agents, the call-state table and its timers."""
