"""gRPC servicers, one per resource: proto in, checks of meaning, store, proto out."""
