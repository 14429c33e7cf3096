"""The metadata store: every table behind one interface; nothing else touches the database."""
