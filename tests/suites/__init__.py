"""Test suites shared by the tiers: each tier runs them on the stores it provides.

``tests/unit`` runs them on the memory and SQLite stores, ``tests/integration`` on PostgreSQL.
Every implementation of a plug-in point passes the same suite.
"""
