"""Application services: load from the store, apply the domain, save, publish."""
