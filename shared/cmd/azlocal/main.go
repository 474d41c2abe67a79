// Command azlocal answers the az command lines this tutorial uses, against the local cloud.
//
//	go run ./shared/cmd/azlocal group create --name rg-demo --location westeurope
//	AZ=azlocal ./04-deploy/deploy.sh
//
// It takes az's flags and prints az's JSON (2-space indent, sorted keys), honours --query
// (JMESPath) and -o json|jsonc|tsv|table|none, and fails the way az fails: "ERROR: ..." on
// stderr, exit code 1 for a service error, 2 for a usage error and 3 for a resource that does not
// exist. It talks to the local cloud's Azure Resource Manager (management.azure.com), Microsoft
// Graph (graph.microsoft.com) and Key Vault data plane through the local cloud's proxy, signed in
// as the local developer principal (DIR/developer.env), where az would be signed in as you.
//
// It finds the local cloud's folder DIR through $LOCALCLOUD_DIR, else ./.localcloud, else a
// .localcloud folder in a parent directory, and reads the proxy and its CA from DIR/env.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Getenv)
	stop()
	os.Exit(code)
}
