// Package deploy holds no program: 04-deploy is the step that puts the step-03 app on Azure,
// and this Go package exists only for its tests.
//
// The folder has a Dockerfile (the app as a small non-root container), infra/main.bicep with
// azure.yaml (the deployment declared, for `az deployment group create` or `azd up`),
// deploy.sh (the same deployment as az commands, in the Learn module's order), cleanup.sh, and
// a GitHub Actions workflow that signs in with a federated credential. README.md walks
// through them.
//
// The tests read the Bicep file and the scripts to check that both paths grant the same role
// to the same identity, run deploy.sh against a stand-in az to check its order and output, and
// rehearse the whole deployment on the local cloud with AZ=azlocal: the deployed app serves
// its secret; removing its identity deletes the principal and breaks the app until an
// identity is assigned again; cleanup.sh leaves nothing behind.
package deploy
