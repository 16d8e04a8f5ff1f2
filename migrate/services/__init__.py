"""The local stack's services, one module each."""
