// Package entra stands in for Microsoft Entra ID's token service at login.microsoftonline.com,
// for the one flow a service uses to reach Key Vault: the OAuth 2.0 client credentials grant.
//
// It serves what MSAL and azidentity read before and during that grant: instance discovery,
// the v2.0 OpenID configuration, the signing keys (JWKS) and the v2.0 token endpoint, which
// accepts a client secret (in the body or as HTTP Basic) or a certificate-signed client
// assertion, and answers with Entra's own JSON, status codes and AADSTS error codes. Tokens are
// v1-shaped access tokens (iss https://sts.windows.net/{tenant}/), signed RS256 with a key that
// can survive restarts, so a token-validating resource such as the local Key Vault checks them
// the way Azure resources check real ones (ValidateAccessToken).
//
// Left out on purpose: users and every interactive or delegated flow (authorization code,
// device code, on-behalf-of, password), refresh tokens, ID tokens, consent and permissions,
// conditional access, the v1 token endpoint, federated credentials and token encryption. The
// identity package's managed identity endpoint mints its tokens through IssueAccessToken, as
// on Azure, where the platform and not the app talks to Entra ID.
package entra
