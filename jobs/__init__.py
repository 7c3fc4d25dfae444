"""Scheduled jobs: reminders, digests and outbox delivery."""
