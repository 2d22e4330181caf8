"""assistants-compat core: the gRPC service that owns all state and run execution."""
