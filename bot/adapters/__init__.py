"""Infrastructure adapters: database tables, engine, repositories."""
