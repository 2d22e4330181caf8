"""assistants-compat HTTP edge: OpenAI's Assistants v2 REST surface over the core's gRPC."""
