"""The HTTP/JSON transport: the `google.api.http` routes of the five services, transcoded with
grpc-gateway's rules and run through the very pipeline (interceptors, servicers) gRPC runs."""
