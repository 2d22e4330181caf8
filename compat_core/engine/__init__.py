"""The run engine: executions, their events, and the prompt each model call reads."""
