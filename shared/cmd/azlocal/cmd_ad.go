package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// credentialWarning is what az prints whenever it shows a new credential.
const credentialWarning = "The output includes credentials that you must protect. Be sure that you do not include these credentials in your code or check the credentials into your source control. For more information, see https://aka.ms/azadsp-cli"

func isGUID(s string) bool { _, err := uuid.Parse(s); return err == nil && len(s) == 36 }

// graphTime is how az writes a Graph dateTimeOffset.
func graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// resolveApp returns an application's object id from its appId or object id, as az does.
func (a *app) resolveApp(c *cloud, identifier string) (string, error) {
	if !isGUID(identifier) {
		return "", notFound("Application with identifier URI '%s' doesn't exist", identifier)
	}
	v, err := c.graphCall(a.ctx, http.MethodGet, "/applications"+filter("appId eq "+odataQuote(identifier)), nil)
	if err != nil {
		return "", err
	}
	if apps := list(v, "value"); len(apps) > 0 {
		return get(apps[0], "id"), nil
	}
	return identifier, nil
}

// resolveSP returns a service principal's object id from its appId or object id.
// addShowDelete adds `show` and `delete` for a Graph object found by --id, as az has them for
// both applications and service principals.
func (a *app) addShowDelete(parent *cobra.Command, noun, path string, id *string, idFlag func(*pflag.FlagSet),
	resolve func(*cloud, string) (string, error)) {
	for _, op := range []struct{ use, short, method string }{
		{"show", "Get the details of " + noun + ".", http.MethodGet},
		{"delete", "Delete " + noun + ".", http.MethodDelete},
	} {
		a.add(parent, command{
			use: op.use, short: op.short,
			required: []string{"id"},
			flags:    idFlag,
			run: connected(func(a *app, c *cloud) (any, error) {
				oid, err := resolve(c, *id)
				if err != nil {
					return nil, err
				}
				out, err := c.graphCall(a.ctx, op.method, path+oid, nil)
				if op.method == http.MethodDelete {
					return nil, err
				}
				return out, err
			}),
		})
	}
}

func (a *app) resolveSP(c *cloud, identifier string) (string, error) {
	if !isGUID(identifier) {
		return "", notFound("Service principal '%s' doesn't exist", identifier)
	}
	v, err := c.graphCall(a.ctx, http.MethodGet, "/servicePrincipals"+filter("appId eq "+odataQuote(identifier)), nil)
	if err != nil {
		return "", err
	}
	if sps := list(v, "value"); len(sps) > 0 {
		return get(sps[0], "id"), nil
	}
	return identifier, nil
}

// certificate is a self-signed certificate az creates for --create-cert, or one given by --cert.
type certificate struct {
	der        []byte
	file       string // the PEM file with the private key, for --create-cert
	start, end time.Time
}

// createCert makes az's self-signed login certificate and writes it with its key to
// ~/tmpXXXXXXXX.pem (mode 0600), where az writes it.
func createCert(start, end time.Time) (*certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	start, end = start.Add(-time.Second), end.Add(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1000),
		Subject:      pkix.Name{CommonName: "CLI-Login"},
		NotBefore:    start,
		NotAfter:     end,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, failure("finding the home folder for the certificate file: %v", err)
	}
	f, err := os.CreateTemp(home, "tmp*.pem")
	if err != nil {
		return nil, failure("writing the certificate file: %v", err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return nil, err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}); err != nil {
		return nil, err
	}
	if err := pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
		return nil, err
	}
	return &certificate{der: der, file: f.Name(), start: start, end: end}, f.Close()
}

// loadCert reads --cert: a PEM certificate, its base64 body, or @file holding either.
func loadCert(arg string) (*certificate, error) {
	data := arg
	if path, ok := strings.CutPrefix(arg, "@"); ok {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, failure("%v", err)
		}
		data = string(raw)
	}
	var der []byte
	if block, _ := pem.Decode([]byte(data)); block != nil {
		der = block.Bytes
	} else if raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(data), "")); err == nil {
		der = raw
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, usageError("argument --cert: not a valid certificate (PEM, base64 DER, or @file)")
	}
	return &certificate{der: cert.Raw, start: cert.NotBefore, end: cert.NotAfter}, nil
}

// keyCredential is az's Graph keyCredential for a certificate.
func keyCredential(cert *certificate, start, end time.Time, displayName string) map[string]any {
	// az narrows the credential to the certificate's validity.
	if cert.start.After(start) {
		start = cert.start.Add(time.Second)
	}
	if cert.end.Before(end) {
		end = cert.end.Add(-time.Second)
	}
	kc := map[string]any{
		"type":          "AsymmetricX509Cert",
		"usage":         "Verify",
		"key":           base64.StdEncoding.EncodeToString(cert.der),
		"keyId":         uuid.NewString(),
		"startDateTime": graphTime(start),
		"endDateTime":   graphTime(end),
	}
	if displayName != "" {
		kc["displayName"] = displayName
	}
	return kc
}

// certOption reads --cert/--create-cert (nil: a password is wanted).
func certOption(certArg string, create bool, start, end time.Time) (*certificate, error) {
	switch {
	case certArg != "" && create:
		return nil, usageError("usage error: --cert CERT | --create-cert")
	case certArg != "":
		return loadCert(certArg)
	case create:
		return createCert(start, end)
	}
	return nil, nil
}

func addAD(a *app, root *cobra.Command) {
	ad := group(root, "ad", "Manage Microsoft Entra ID (formerly known as Azure Active Directory, Azure AD, AAD) entities needed for Azure role-based access control (Azure RBAC) through Microsoft Graph API.")
	addSP(a, ad)
	addApp(a, ad)
	user := group(ad, "signed-in-user", "View information about the current signed-in user in Microsoft Entra ID.")
	a.add(user, command{
		use: "show", short: "Get the details for the currently logged-in user.",
		run: connected(func(a *app, c *cloud) (any, error) {
			// The local developer signs in as a service principal, so Graph refuses /me, as it
			// does for az signed in with a service principal.
			return c.graphCall(a.ctx, http.MethodGet, "/me", nil)
		}),
	})
}

func addSP(a *app, ad *cobra.Command) {
	sp := group(ad, "sp", "Manage Microsoft Entra service principals.")
	var name, role, certArg, keyvault string
	var scopes []string
	var years int
	var createCert, skipAssignment bool
	a.add(sp, command{
		use: "create-for-rbac", short: "Create an application and its associated service principal, optionally configure the service principal's RBAC role assignments.",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&name, "name", "n", "", "Display name of the service principal.")
			fs.StringVar(&name, "display-name", "", "Display name of the service principal.")
			fs.StringVar(&role, "role", "", "Role of the service principal.")
			fs.StringArrayVar(&scopes, "scopes", nil, "Space-separated list of scopes the service principal's role assignment applies to.")
			fs.IntVar(&years, "years", 1, "Number of years for which the credentials will be valid.")
			fs.BoolVar(&createCert, "create-cert", false, "Create a self-signed certificate to use for the credential.")
			fs.StringVar(&certArg, "cert", "", "Certificate to use for credentials: PEM or DER, or @file.")
			fs.StringVar(&keyvault, "keyvault", "", "Not emulated: Key Vault certificates.")
			fs.BoolVar(&skipAssignment, "skip-assignment", false, "No-op, as in az.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			if (role == "") != (len(scopes) == 0) {
				return nil, usageError("Usage error: To create role assignments, specify both --role and --scopes.")
			}
			if keyvault != "" {
				return nil, failure("azlocal does not emulate --keyvault: use --create-cert or --cert")
			}
			return a.createForRBAC(name, role, scopes, years, certArg, createCert)
		},
	})
	var id string
	idFlag := func(fs *pflag.FlagSet) {
		fs.StringVar(&id, "id", "", "Service principal name (appId), or object ID.")
	}
	a.add(sp, command{
		use: "create", short: "Create a service principal.",
		required: []string{"id"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&id, "id", "", "Identifier uri, application id, or object id of the associated application.")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			appID := id
			if isGUID(id) {
				v, err := c.graphCall(a.ctx, http.MethodGet, "/applications"+filter("appId eq "+odataQuote(id)), nil)
				if err != nil {
					return nil, err
				}
				if apps := list(v, "value"); len(apps) > 0 {
					appID = get(apps[0], "appId")
				} else if app, err := c.graphCall(a.ctx, http.MethodGet, "/applications/"+id, nil); err == nil {
					appID = get(app, "appId") // an object id
				}
			}
			return c.graphCall(a.ctx, http.MethodPost, "/servicePrincipals", map[string]any{"appId": appID, "accountEnabled": true})
		}),
	})
	a.addShowDelete(sp, "a service principal", "/servicePrincipals/", &id, idFlag, a.resolveSP)
}

// createForRBAC is az ad sp create-for-rbac: an application (patched if one has the display
// name), its old passwords removed, a new password or certificate, a service principal, then a
// role assignment for each scope.
func (a *app) createForRBAC(name, role string, scopes []string, years int, certArg string, create bool) (any, error) {
	c, err := a.connect()
	if err != nil {
		return nil, err
	}
	start := time.Now().UTC()
	end := start.AddDate(years, 0, 0)
	displayName := name
	var existingSP any
	if displayName == "" {
		displayName = "azure-cli-" + start.Format("2006-01-02-15-04-05")
	} else {
		v, err := c.graphCall(a.ctx, http.MethodGet, "/servicePrincipals"+filter("displayName eq "+odataQuote(displayName)), nil)
		if err != nil {
			return nil, err
		}
		if sps := list(v, "value"); len(sps) > 0 {
			existingSP = sps[0]
		}
	}
	cert, err := certOption(certArg, create, start, end)
	if err != nil {
		return nil, err
	}
	application, _, err := a.createApplication(c, displayName)
	if err != nil {
		return nil, err
	}
	appObjectID, appID := get(application, "id"), get(application, "appId")
	if cert != nil {
		patch := map[string]any{"keyCredentials": []any{keyCredential(cert, start, end, "")}}
		if _, err := c.graphCall(a.ctx, http.MethodPatch, "/applications/"+appObjectID, patch); err != nil {
			return nil, err
		}
	}
	for _, cred := range list(application, "passwordCredentials") {
		body := map[string]any{"keyId": get(cred, "keyId")}
		if _, err := c.graphCall(a.ctx, http.MethodPost, "/applications/"+appObjectID+"/removePassword", body); err != nil {
			return nil, err
		}
	}
	var password any
	if cert == nil {
		secret, err := addPassword(a, c, appObjectID, "rbac", start, end)
		if err != nil {
			return nil, err
		}
		password = secret
	}
	sp := existingSP
	if sp == nil {
		if sp, err = c.graphCall(a.ctx, http.MethodPost, "/servicePrincipals", map[string]any{"appId": appID, "accountEnabled": true}); err != nil {
			return nil, err
		}
	}
	for _, scope := range scopes {
		a.warn("Creating '%s' role assignment under scope '%s'", role, scope)
		_, err := a.createRoleAssignment(c, role, get(sp, "id"), "ServicePrincipal", scope, "", "")
		if isCode(err, http.StatusConflict, "") {
			a.warn("  Role assignment already exists.\n")
			continue
		}
		if err != nil {
			a.warn("  Role assignment creation failed.\n")
			return nil, err
		}
	}
	a.warn("%s", credentialWarning)
	result := map[string]any{"appId": appID, "displayName": displayName, "password": password, "tenant": c.tenantID}
	if cert != nil && cert.file != "" {
		a.warn("Please copy %s to a safe place. When you run 'az login', provide the file path in the --password argument", cert.file)
		result["fileWithCertAndPrivateKey"] = cert.file
	}
	return result, nil
}

// createApplication creates an application, or returns the one with that display name, as az
// ad app create does.
func (a *app) createApplication(c *cloud, displayName string) (application any, existed bool, err error) {
	v, err := c.graphCall(a.ctx, http.MethodGet, "/applications"+filter("displayName eq "+odataQuote(displayName)), nil)
	if err != nil {
		return nil, false, err
	}
	var same []any
	for _, x := range list(v, "value") {
		if get(x, "displayName") == displayName {
			same = append(same, x)
		}
	}
	switch len(same) {
	case 0:
		application, err = c.graphCall(a.ctx, http.MethodPost, "/applications", map[string]any{"displayName": displayName})
		return application, false, err
	case 1:
		a.warn("Found an existing application instance: (id) %s. We will patch it.", get(same[0], "id"))
		return same[0], true, nil
	}
	ids := make([]string, len(same))
	for i, x := range same {
		ids[i] = get(x, "id")
	}
	return nil, false, failure("More than one application have the same display name '%s': (id) %s, please remove them first.", displayName, strings.Join(ids, ", "))
}

// addPassword asks Graph for a new client secret and returns its text.
func addPassword(a *app, c *cloud, appObjectID, displayName string, start, end time.Time) (string, error) {
	cred := map[string]any{"endDateTime": graphTime(end), "startDateTime": graphTime(start)}
	if displayName != "" {
		cred["displayName"] = displayName
	}
	v, err := c.graphCall(a.ctx, http.MethodPost, "/applications/"+appObjectID+"/addPassword", map[string]any{"passwordCredential": cred})
	if err != nil {
		return "", err
	}
	return get(v, "secretText"), nil
}

func addApp(a *app, ad *cobra.Command) {
	appGroup := group(ad, "app", "Manage Microsoft Entra applications.")
	var displayName, id string
	a.add(appGroup, command{
		use: "create", short: "Create an application.",
		required: []string{"display-name"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&displayName, "display-name", "", "The display name of the application.")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			application, existed, err := a.createApplication(c, displayName)
			if err != nil || !existed {
				return application, err
			}
			return c.graphCall(a.ctx, http.MethodGet, "/applications/"+get(application, "id"), nil)
		}),
	})
	idFlag := func(fs *pflag.FlagSet) {
		fs.StringVar(&id, "id", "", "Identifier uri, application id, or object id.")
	}
	a.addShowDelete(appGroup, "an application", "/applications/", &id, idFlag, a.resolveApp)
	credential := group(appGroup, "credential", "Manage an application's password or certificate credentials.")
	var appendCred, createCert bool
	var years int
	var certArg, endDate, credName string
	a.add(credential, command{
		use: "reset", short: "Reset an application's password or certificate credentials.",
		required: []string{"id"},
		flags: func(fs *pflag.FlagSet) {
			idFlag(fs)
			fs.BoolVar(&appendCred, "append", false, "Append the new credential instead of overwriting.")
			fs.IntVar(&years, "years", 0, "Number of years for which the credentials will be valid. Default: 1 year.")
			fs.StringVar(&endDate, "end-date", "", "Finer grain of expiry time if '--years' is insufficient, e.g. '2020-12-31T11:59:59+00:00'.")
			fs.BoolVar(&createCert, "create-cert", false, "Create a self-signed certificate to use for the credential.")
			fs.StringVar(&certArg, "cert", "", "Certificate to use for credentials: PEM or DER, or @file.")
			fs.StringVar(&credName, "display-name", "", "Friendly name for the credential.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			start := time.Now().UTC()
			var end time.Time
			switch {
			case years != 0 && endDate != "":
				return nil, failure("usage error: --years | --end-date")
			case endDate != "":
				t, err := parseDate(endDate)
				if err != nil {
					return nil, usageError("argument --end-date: %v", err)
				}
				end = t
			default:
				end = start.AddDate(max(years, 1), 0, 0)
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			oid, err := a.resolveApp(c, id)
			if err != nil {
				return nil, err
			}
			application, err := c.graphCall(a.ctx, http.MethodGet, "/applications/"+oid, nil)
			if err != nil {
				return nil, err
			}
			if !appendCred {
				for _, cred := range list(application, "passwordCredentials") {
					if _, err := c.graphCall(a.ctx, http.MethodPost, "/applications/"+oid+"/removePassword", map[string]any{"keyId": get(cred, "keyId")}); err != nil {
						return nil, err
					}
				}
			}
			cert, err := certOption(certArg, createCert, start, end)
			if err != nil {
				return nil, err
			}
			result := map[string]any{"appId": get(application, "appId"), "password": nil, "tenant": c.tenantID}
			if cert == nil {
				secret, err := addPassword(a, c, oid, credName, start, end)
				if err != nil {
					return nil, err
				}
				result["password"] = secret
			} else {
				var creds []any
				if appendCred {
					creds = list(application, "keyCredentials")
				}
				creds = append(creds, keyCredential(cert, start, end, credName))
				if _, err := c.graphCall(a.ctx, http.MethodPatch, "/applications/"+oid, map[string]any{"keyCredentials": creds}); err != nil {
					return nil, err
				}
				if cert.file != "" {
					result["fileWithCertAndPrivateKey"] = cert.file
				}
			}
			a.warn("%s", credentialWarning)
			return result, nil
		},
	})
}

// parseDate reads az's --end-date: an ISO date or date-time.
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("'%s' is not a date such as 2030-12-31T11:59:59+00:00", s)
}
