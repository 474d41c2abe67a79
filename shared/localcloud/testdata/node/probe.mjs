// The Azure SDK for JavaScript, unmodified, reading the vault with whatever credential the
// environment describes: what a Node app does on Azure. The local cloud's tests run it with the
// environment the local cloud hands out.
import { DefaultAzureCredential, ManagedIdentityCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";

const credential = process.env.IDENTITY_ENDPOINT
  ? new ManagedIdentityCredential()
  : new DefaultAzureCredential();
const client = new SecretClient(process.env.AZURE_KEYVAULT_URL, credential);

const name = process.argv[2] ?? "SecretPassword";
const secret = await client.getSecret(name);
console.log(`${secret.name}=${secret.value}`);
if (process.argv[3] === "all") {
  await client.setSecret("node-probe", "from node");
  let listed = 0;
  for await (const _ of client.listPropertiesOfSecrets()) listed++;
  const poller = await client.beginDeleteSecret("node-probe");
  await poller.pollUntilDone();
  await client.purgeDeletedSecret("node-probe");
  console.log(`listed=${listed}`);
}
