"""The dev stack: real Kafka-compatible (Tansu) and S3 (moto) servers as child processes."""
