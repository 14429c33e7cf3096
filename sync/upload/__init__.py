"""Recording and uploading: seal into the outbox first, then a paced uploader checks receipts."""
