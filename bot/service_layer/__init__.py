"""Services and the Unit of Work: the only layer that changes stored state."""
