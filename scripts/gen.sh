#!/usr/bin/env bash
# Regenerate gen/ from proto/: Python (+ .pyi, + grpc) and TypeScript. Deterministic: CI runs it
# and fails when the committed gen/ differs.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUF_CACHE_DIR="${BUF_CACHE_DIR:-$PWD/build/buf-cache}"
.venv/bin/python scripts/fetch_proto_deps.py >/dev/null
rm -rf gen/python gen/ts gen/openapi gen/schema
mkdir -p gen/python gen/ts gen/openapi gen/schema build
.venv/bin/buf generate
# buf.validate's Python module for google.protobuf (the protovalidate wheel ships only its own runtime's).
.venv/bin/python -m grpc_tools.protoc -Ibuild/proto-deps \
  --python_out=gen/python --pyi_out=gen/python buf/validate/validate.proto
# google.rpc error details for TypeScript (the SDK decodes ErrorInfo, BadRequest, RetryInfo from
# grpc-status-details-bin); Python has them from googleapis-common-protos.
.venv/bin/python -m grpc_tools.protoc -Ibuild/proto-deps \
  --plugin=protoc-gen-es=node_modules/.bin/protoc-gen-es \
  --es_out=gen/ts --es_opt=target=ts,import_extension=js google/rpc/error_details.proto
# Packages, so that type checkers and setuptools see them.
find gen/python -type d -exec sh -c 'touch "$0/__init__.py"' {} \;
rm -f gen/python/__init__.py
# The OpenAPI document of the HTTP face, from the same protos (an image keeps their comments).
.venv/bin/buf build -o build/openapi-image.binpb
.venv/bin/python scripts/gen_openapi.py build/openapi-image.binpb gen/openapi
# The JSON Schema of the portable dashboard document (ExportDashboardDocument / ImportDashboard).
.venv/bin/python scripts/gen_document_schema.py build/openapi-image.binpb gen/schema
echo "gen/ regenerated"
