"""What every example shares: where the server is, who the caller is, how a step is printed,
and the exit status (0 when every step did what the example says, 1 otherwise)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import uuid
from collections.abc import Callable

from tessera_client import DEFAULT_ADDRESS, ApiError, Client


class ExampleFailed(Exception):
    """A step did not do what the example says it does."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise ExampleFailed(message)


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def say(text: str) -> None:
    print(f"   {text}", flush=True)


def explain(error: ApiError) -> None:
    """Prints an error the way the client exposes it: code, reason, field violations."""
    say(f"{error.code().name} [{error.reason}] {error.message}")
    for field, description in error.field_violations:
        say(f"  field {field}: {description}")
    for violation in error.precondition_violations:
        say(f"  precondition {violation.type} on {violation.subject}: {violation.description}")


def arguments(description: str, add: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--address", default=os.environ.get("TESSERA_ADDRESS", DEFAULT_ADDRESS), help="host:port (TESSERA_ADDRESS)"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("TESSERA_TOKEN", ""),
        help="an editor's or admin's JWT (TESSERA_TOKEN; `tessera token` mints one in development)",
    )
    parser.add_argument("--keep", action="store_true", help="keep what the example created")
    if add is not None:
        add(parser)
    args = parser.parse_args()
    if not args.token:
        parser.error("no token: pass --token or set TESSERA_TOKEN (for example: export TESSERA_TOKEN=$(tessera token))")
    return args


def connect(args: argparse.Namespace) -> Client:
    client = Client(args.address, token=args.token, correlation_id=f"example-{uuid.uuid4().hex[:12]}")
    client.wait_ready(timeout=10)
    return client


def run_tag() -> str:
    """A tag of this run's own, so that lists find exactly what this run made."""
    return f"example-{uuid.uuid4().hex[:8]}"


def main(run: Callable[[], None]) -> None:
    try:
        run()
    except ExampleFailed as failure:
        print(f"\nFAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    except ApiError as error:
        print(f"\nFAILED: {error} (correlation id {error.correlation_id or '-'})", file=sys.stderr)
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        print("\nFAILED", file=sys.stderr)
        sys.exit(1)
    print("\nOK", flush=True)
