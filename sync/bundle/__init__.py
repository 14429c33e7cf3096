"""The bundle: an encounter's evidence as files, and the limits a bundle must keep."""
