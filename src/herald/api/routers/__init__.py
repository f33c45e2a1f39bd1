"""One router per resource; each one only translates between HTTP and a service."""
