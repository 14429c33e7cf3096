"""The evidence itself: encounters, taking and serving chunks, and deleting an encounter."""
