"""The long-running service: scheduler, receive poller, outbox worker and HTTP app."""
