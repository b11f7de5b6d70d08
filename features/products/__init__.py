"""Products: /api/products (list, read) and the admin-only create and update."""
