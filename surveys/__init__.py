"""The domain: instruments, scoring, grades, coverage. Pure: no Telegram, no database."""
