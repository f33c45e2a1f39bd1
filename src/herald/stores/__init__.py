"""Stores: the source of truth for channels, posts and deliveries."""
