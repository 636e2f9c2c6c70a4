"""Who may read what: the site-scoped study reader and accounts, roles and sign-in."""
