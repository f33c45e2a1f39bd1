"""Limiters: when a request may go out without breaking a platform limit."""
