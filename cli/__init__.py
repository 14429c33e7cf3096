"""The `safehold` command: thin argument parsing over sync/ and crypto/."""
