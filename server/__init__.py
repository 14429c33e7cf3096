"""The Safehold HTTP API: verifies and stores ciphertext, never decrypts."""
