// Package graph stands in for the part of Microsoft Graph (https://graph.microsoft.com/v1.0)
// that az ad app / az ad sp use to register an application, give it a client secret or a
// certificate, and create its service principal: /applications (with addPassword,
// removePassword and keyCredentials), /servicePrincipals, and /me's refusal of app tokens. It
// answers with Graph's JSON shapes, status codes and error codes (Request_ResourceNotFound,
// Request_BadRequest, InvalidAuthenticationToken, ...) from the local directory, so a secret
// added here signs in at the local Entra ID at once.
//
// Every request needs a bearer token that the local Entra ID issued for
// https://graph.microsoft.com; a caller sees and changes only its own tenant. Graph permissions
// (Application.ReadWrite.All and the like) are NOT enforced: any principal of a tenant may
// manage every application in it, which keeps the tutorial's scripts free of consent steps.
//
// Left out on purpose: users, groups, owners, directory roles, delegated (/me) flows, app roles
// and OAuth2 permission scopes, federated credentials, addKey/removeKey, $select, $top, $count,
// paging, batching, delta queries, renaming an application and removing a certificate by
// PATCHing keyCredentials (the local directory cannot do either yet).
package graph
