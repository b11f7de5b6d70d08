"""Users: /api/users (list, read, create, replace, update, delete) and /api/me."""
