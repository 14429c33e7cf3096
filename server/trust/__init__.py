"""Trusted contacts: invitations, release policies, who may read what, access log, notifications."""
