"""Where chunk bodies live: one write-once interface, a local-disk driver and an S3 driver."""
