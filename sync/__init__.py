"""The Safehold client: API client, on-device outbox, uploader, downloader, bundle reader."""
