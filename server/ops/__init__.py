"""Running the server in production: logs, request ids, metrics, health and start-up checks."""
