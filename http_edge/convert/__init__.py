"""Pure translation between OpenAI's JSON and the `compat_core.v1` messages, one module per
resource. Nothing here does I/O, so every shape can be tested without a server."""
