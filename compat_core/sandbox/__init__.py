"""Where model-written code runs: isolated from the host, limited, stateful per session."""
