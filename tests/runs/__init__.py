"""End-to-end tests of runs (issue 3): SDK helpers, a scripted upstream, cancel, gRPC."""
