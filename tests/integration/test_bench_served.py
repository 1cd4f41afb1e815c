"""What the benchmarks read of a server in its own processes: how its connections were split over
them (SO_REUSEPORT hashes each connection to one process; a multi-process run's tail depends on
how unevenly a few long connections landed)."""

from __future__ import annotations

import time

import grpc

from bench.served import bare_grpc, with_connection_split

METHOD = "/bench.Echo/Answer"


def test_the_connection_split_counts_every_connection_once_on_the_process_holding_it() -> None:
    with bare_grpc(METHOD, b"payload", processes=2) as bare:
        channels = [
            grpc.insecure_channel(bare.address, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(6)
        ]
        try:
            for channel in channels:
                call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
                assert call(b"", timeout=10) == b"payload"

            def load() -> str:
                time.sleep(1.0)  # the connections stay open while the split is read
                return "done"

            result, split = with_connection_split(bare, load, after=0.2)
            assert result == "done"
            assert sum(split) == 6 and 1 <= len(split) <= 2
            assert split == sorted(split, reverse=True)
            assert with_connection_split(bare, lambda: "quick", after=0.2) == ("quick", [])  # over before
        finally:
            for channel in channels:
                channel.close()
