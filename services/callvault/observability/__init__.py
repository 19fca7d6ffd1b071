"""What operators watch: Prometheus metrics and structured log lines, with no personal data."""
