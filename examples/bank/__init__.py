"""A bank line: a verification side trip that comes back with a typed result."""
