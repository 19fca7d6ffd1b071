"""The auditor's side: reading the archived audit log back, and the report."""
