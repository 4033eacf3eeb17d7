"""Who may do what: accounts, roles and permissions. The core engine never imports this."""
