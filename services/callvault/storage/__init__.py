"""S3-compatible storage: layout, tags, the archive operations and bucket set-up (boto3)."""
