"""marshmallow schemas for every request and response body of the Safehold HTTP API."""
