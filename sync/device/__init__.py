"""The device's own state: its keys and folder, login, its signed roster and the changes feed."""
