"""Golden wire fixtures: the platforms' documented requests and answers (see README.md)."""
