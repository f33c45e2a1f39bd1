"""Queues: carry claimed deliveries from the dispatcher to the workers."""
