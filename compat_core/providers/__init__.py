"""Model providers: the builtin offline model and OpenAI-compatible upstreams."""
