"""Every RPC method the core serves, in one table that grpc.aio looks calls up in.

The generated `add_…Servicer_to_server` functions register each method with the server as
well as adding it as a generic handler. grpc.aio keeps one pending accept per registered
method and, for every call it takes up, waits on all of them at once (`asyncio.wait` over
some forty futures, each given a callback and then relieved of it): measured through the
edge on 2 cores, 1 to 2% of the requests a second of a list call, 5% of a get run. Served
from this table instead, the server keeps one pending accept and finds a call's handler
with one dict lookup, as the floor the benchmarks compare against does (`bench/floor.py`).

Handlers are built from the services' descriptors, the same ones the guard wraps by.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

_Factory = Callable[..., grpc.RpcMethodHandler]


class MethodTable:
    """Full method path (`/package.Service/Method`) to its handler, for every service added.

    A generic RPC handler as grpc.aio takes one: an object whose `service()` answers a call's
    handler, or None for a method it does not serve (grpc then answers UNIMPLEMENTED).
    """

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add(self, servicer: object, service: ServiceDescriptor) -> None:
        """Serve each method of `service` by the servicer's attribute of the method's name."""
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            if path in self._handlers:
                raise ValueError(f"{path} is served twice")
            self._handlers[path] = _handler(getattr(servicer, method.name), method)

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(handler_call_details.method)


def _handler(behaviour: Callable[..., Any], method: MethodDescriptor) -> grpc.RpcMethodHandler:
    request = message_factory.GetMessageClass(method.input_type)
    response = message_factory.GetMessageClass(method.output_type)
    factory = _FACTORIES[method.client_streaming, method.server_streaming]
    return factory(
        behaviour,
        request_deserializer=request.FromString,
        response_serializer=response.SerializeToString,
    )


# By (client streaming, server streaming).
_FACTORIES: dict[tuple[bool, bool], _Factory] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}
