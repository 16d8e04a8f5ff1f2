"""Click commands, one module per command group; `migrate.cli` assembles them."""
