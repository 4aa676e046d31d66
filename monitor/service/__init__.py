"""The long-running service: scheduler, receive checker, outbox worker and HTTP app."""
