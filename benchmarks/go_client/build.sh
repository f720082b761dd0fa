#!/bin/sh
# Build benchmarks/go_client/go-bench (etcd Go client clientv3 benchmark).
# Uses Debian bookworm packages: Go 1.19 + etcd 3.4.23 sources in GOPATH mode.
set -e
DIR=$(cd "$(dirname "$0")" && pwd)
if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3 ]; then
    apt-get update
    apt-get install -y golang-go golang-etcd-server-dev
fi
# Private GOPATH entry holding our program, plus Debian's /usr/share/gocode.
GP=$(mktemp -d)
trap 'rm -rf "$GP"' EXIT
mkdir -p "$GP/src/fastetcd-go-bench"
cp "$DIR/main.go" "$GP/src/fastetcd-go-bench/"
cd "$GP/src/fastetcd-go-bench"
GO111MODULE=off GOPATH="$GP:/usr/share/gocode" GOFLAGS= GOCACHE="${GOCACHE:-$HOME/.cache/go-build}" \
    go build -o "$DIR/go-bench" .
echo "built $DIR/go-bench"
