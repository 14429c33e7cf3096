"""Trusted contacts, from both sides: the owner's invitations and pins, and a contact's state."""
