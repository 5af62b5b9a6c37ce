"""Disputes: evidence, assignment, deadlines, escalation; trade events and webhooks."""
