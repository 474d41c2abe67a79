package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
)

// TestMain lets scripts run azlocal as a command: the test binary is azlocal when asked to be.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"azlocal": func() {
			os.Exit(run(context.Background(), os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Getenv))
		},
	})
}

const cloudKey = "cloud"

// TestScripts runs the transcripts in testdata/script, each against its own local cloud.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			dir := filepath.Join(env.WorkDir, ".localcloud")
			cloud, err := localcloud.Start(context.Background(), localcloud.Options{Dir: dir})
			if err != nil {
				return err
			}
			env.Defer(func() { cloud.Close() })
			env.Values[cloudKey] = cloud
			home := filepath.Join(env.WorkDir, "home")
			env.Setenv("LOCALCLOUD_DIR", dir)
			env.Setenv("HOME", home)
			env.Setenv("DEVELOPER", localcloud.DeveloperClientID)
			env.Setenv("SUBSCRIPTION", localcloud.SubscriptionID)
			return os.MkdirAll(home, 0o700)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"envfrom":   envFrom,
			"getsecret": getSecret,
			"httpget":   httpGet,
		},
	})
}

// envFrom sets the named variables to the whitespace-separated fields of the last stdout:
//
//	exec azlocal ad sp create-for-rbac ... --query '[appId, password]' -o tsv
//	envfrom APP_ID PASSWORD
func envFrom(ts *testscript.TestScript, neg bool, names []string) {
	if neg || len(names) == 0 {
		ts.Fatalf("usage: envfrom NAME...")
	}
	fields := strings.Fields(ts.ReadFile("stdout"))
	if len(fields) != len(names) {
		ts.Fatalf("envfrom: stdout has %d fields (%q), want %d", len(fields), fields, len(names))
	}
	for i, name := range names {
		ts.Setenv(name, fields[i])
	}
}

// getSecret signs in as a principal, with a client secret or with a certificate's PEM file
// (key and certificate, as az writes it), and prints a secret's value: what an app does.
//
//	getsecret VAULT NAME CLIENT_ID SECRET|FILE.pem
func getSecret(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 {
		ts.Fatalf("usage: getsecret VAULT NAME CLIENT_ID SECRET|FILE.pem")
	}
	cloud := ts.Value(cloudKey).(*localcloud.Cloud)
	opts := azcore.ClientOptions{Transport: cloud.HTTPClient()}
	var cred azcore.TokenCredential
	var err error
	if strings.HasSuffix(args[3], ".pem") {
		pemData, rerr := os.ReadFile(ts.MkAbs(args[3]))
		ts.Check(rerr)
		certs, key, perr := azidentity.ParseCertificates(pemData, nil)
		ts.Check(perr)
		cred, err = azidentity.NewClientCertificateCredential(localcloud.TenantID, args[2], certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts})
	} else {
		cred, err = azidentity.NewClientSecretCredential(localcloud.TenantID, args[2], args[3],
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts})
	}
	ts.Check(err)
	client, err := azsecrets.NewClient("https://"+args[0]+".vault.azure.net/", cred, &azsecrets.ClientOptions{ClientOptions: opts})
	ts.Check(err)
	resp, err := client.GetSecret(context.Background(), args[1], "", nil)
	switch {
	case err != nil && neg:
		ts.Logf("getsecret failed as expected: %v", err)
	case err != nil:
		ts.Fatalf("getsecret: %v", err)
	case neg:
		ts.Fatalf("getsecret succeeded; want a failure")
	default:
		ts.Stdout().Write([]byte(*resp.Value + "\n"))
	}
}

// httpGet prints the body of a GET through the local cloud, once it answers 200: a web app
// answers once its process listens, which takes as long as it takes.
//
//	httpget URL
func httpGet(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: httpget URL")
	}
	client := ts.Value(cloudKey).(*localcloud.Cloud).HTTPClient()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := client.Get(args[0])
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				ts.Stdout().Write(body)
				return
			}
			if err == nil {
				err = fmt.Errorf("%s: %s", resp.Status, body)
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("httpget %s: %v", args[0], err)
		}
		<-time.After(100 * time.Millisecond)
	}
}
