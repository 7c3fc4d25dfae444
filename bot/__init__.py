"""ceping bot: the Telegram conversation and commands."""
