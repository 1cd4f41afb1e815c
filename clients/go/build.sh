#!/usr/bin/env bash
# Generates the Go stubs from proto/ (buf + Debian's protoc-gen-go, protoc-gen-go-grpc) into
# build/go and builds clients/go's program in GOPATH mode against Debian's Go libraries
# (/usr/share/gocode: grpc, protobuf, genproto). Nothing is downloaded. Prints the binary's path.
# `build.sh test` also runs the Go unit tests (the retry package) before printing it.
#   apt-get install golang-go protoc-gen-go protoc-gen-go-grpc \
#     golang-google-grpc-dev golang-google-protobuf-dev golang-google-genproto-dev
set -euo pipefail
cd "$(dirname "$0")/../.."
export BUF_CACHE_DIR="${BUF_CACHE_DIR:-$PWD/build/buf-cache}"
out=build/go
.venv/bin/python scripts/fetch_proto_deps.py >/dev/null
rm -rf "$out/src/tessera.example/gen"
.venv/bin/buf generate --template clients/go/buf.gen.go.yaml
# google/* is Debian's genproto (the stubs import it from there): drop buf's copies.
rm -rf "$out/src/tessera.example/gen/google"
rm -rf "$out/src/tessera.example/client"
cp -R clients/go/src/tessera.example/client "$out/src/tessera.example/client"
mkdir -p "$out/bin" "$out/cache"
GO111MODULE=off GOPATH="$PWD/$out:/usr/share/gocode" GOPROXY=off GOCACHE="$PWD/$out/cache" \
  go build -o "$out/bin/tessera-go" tessera.example/client/cmd/tessera-go
if [[ ${1:-} == test ]]; then
  GO111MODULE=off GOPATH="$PWD/$out:/usr/share/gocode" GOPROXY=off GOCACHE="$PWD/$out/cache" \
    go test -count=1 tessera.example/client/retry >&2
fi
echo "$out/bin/tessera-go"
