"""Generated protobuf and gRPC code for package `compat_core.v1` (`make proto`; do not edit)."""
