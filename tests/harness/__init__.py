"""Helpers the test suite shares: real services (`services`), gRPC error reading (`rpc`)."""
