#!/usr/bin/env bash
# Bundles the browser page (clients/ts/browser) with esbuild into build/browser: index.html and
# page.js (the SDK's browser entry point, @connectrpc/connect-web, the generated messages).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p build/browser
node_modules/.bin/esbuild clients/ts/browser/page.ts --bundle --format=esm --platform=browser \
  --target=es2022 --log-level=warning --outfile=build/browser/page.js
cp clients/ts/browser/index.html build/browser/index.html
echo build/browser
