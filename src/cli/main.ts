import { Command, Option, InvalidArgumentError } from 'commander';
import { CrossmeshError, isCrossmeshError } from '../errors.js';
import { CONTROL_PLANE, DEFAULT_CLUSTERS } from './defaults.js';
import { VERSION } from '../version.js';

// Every command loads its modules in its action (`--help` loads none of them; `get` loads no
// zod schema and no YAML unless -o yaml): a CLI run pays only for what it runs.
const lifecycle = () => import('./commands/lifecycle.js');
const apps = () => import('./commands/apps.js');
const resources = () => import('./commands/resources.js');
const target = () => import('./target.js');

/** The API client of the selected cluster, and the command's module, loaded side by side. */
async function withClient<T>(flag: string | undefined, fn: (client: import('../client/api-client.js').ApiClient) => Promise<T>): Promise<T> {
  const client = (await target()).clientFor(flag);
  try { return await fn(client); } finally { await client.close(); }
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`"${value}" is not a port number (0-65535)`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Runs an action that returns lines to print; the client is closed afterwards. */
function out(text: string | string[]): void {
  const s = Array.isArray(text) ? text.join('\n') + (text.length ? '\n' : '') : text;
  process.stdout.write(s);
}

export function buildProgram(): Command {
  const program = new Command('crossmesh')
    .description('Multi-cluster service mesh and Dapr-compatible runtime, in one program')
    .version(VERSION)
    .option('--cluster <name>', 'cluster to talk to (default: $CROSSMESH_CLUSTER, then the current context)')
    .showHelpAfterError('(run `crossmesh --help` or `crossmesh help <command>` for usage)');
  const cluster = () => program.opts().cluster as string | undefined;

  program.command('cluster')
    .description('run one cluster process (API server, store, gateway) in the foreground')
    .requiredOption('--name <name>', 'cluster name, e.g. cluster-1')
    .option('--api-port <port>', 'API listen port (0 = any free port)', port, 6444)
    .option('--gateway-port <port>', 'gateway listen port (0 = any free port)', port, 8080)
    .option('--mesh-port <port>', "gateway mesh (tunnel) port for other clusters' sidecars (0 = any free port)", port, 0)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .requiredOption('--data-dir <dir>', 'where the cluster keeps its store and token')
    .option('--ca-cert <file>', 'PEM certificate of the root CA this cluster uses instead of generating one (with --ca-key)')
    .option('--ca-key <file>', 'PEM private key (ECDSA P-256) of --ca-cert')
    .option('--trust-domain <name>', 'SPIFFE trust domain of the mesh (default crossmesh.local; kept across restarts)')
    .option('--insecure-plaintext', 'mesh traffic without mTLS (comparison and debugging only; the API stays HTTPS)')
    .option('--workload-cert-ttl <duration>', 'lifetime of workload certificates, e.g. 10s, 24h (default 24h)')
    .action(async (o) => {
      // Loaded here: only this command needs the cluster (API server, store, gateway).
      const [{ runClusterProcess }, { identityFlags }] = await Promise.all([import('./commands/cluster.js'), import('./identity-flags.js')]);
      await runClusterProcess({ name: o.name, apiPort: o.apiPort, gatewayPort: o.gatewayPort, meshPort: o.meshPort, dataDir: o.dataDir, host: o.host, ...identityFlags(o) });
    });

  program.command('up')
    .description('start the clusters in the background (idempotent) and record them as contexts')
    .option('--clusters <names>', 'comma-separated cluster names', DEFAULT_CLUSTERS.join(','))
    .option('--api-port <port>', 'API port of the first cluster; the next ones count up (0 = free ports)', port, 6444)
    .option('--gateway-port <port>', 'gateway port of the first cluster; the next ones count up (0 = free ports)', port, 8080)
    .option('--mesh-port <port>', "mesh (tunnel) port of the first cluster, for other clusters' sidecars; the next ones count up (0 = free ports)", port, 0)
    .option('--host <addr>', 'address the clusters listen on: on a host of its own, the address other hosts reach it on (it is in the API certificate and the gateway address joins advertise)', '127.0.0.1')
    .option('--no-join', `do not join the other clusters to ${CONTROL_PLANE} (apply Cluster resources yourself)`)
    .option('--ca-cert <file>', `PEM certificate of your own root CA: the mesh root, given to ${CONTROL_PLANE} (or, without it in --clusters, to each cluster); with --ca-key`)
    .option('--ca-key <file>', 'PEM private key (ECDSA P-256) of --ca-cert')
    .option('--trust-domain <name>', 'SPIFFE trust domain of the mesh (default crossmesh.local); fixed once a cluster started')
    .option('--insecure-plaintext', 'mesh traffic without mTLS (comparison and debugging only; the API stays HTTPS); fixed once a cluster started')
    .option('--workload-cert-ttl <duration>', 'lifetime of workload certificates, e.g. 10s, 24h (default 24h); fixed once a cluster started')
    .action(async (o) => {
      const names = String(o.clusters).split(',').map((s) => s.trim()).filter(Boolean);
      if (names.length === 0) throw new CrossmeshError('CM_ERR_USAGE', '--clusters: give at least one name');
      const [{ clusterTable, joinMembers, localMemberSpec, up }, { identityFlags }] = await Promise.all([lifecycle(), import('./identity-flags.js')]);
      const states = await up({ clusters: names, apiPort: o.apiPort, gatewayPort: o.gatewayPort, meshPort: o.meshPort, host: o.host, identity: identityFlags(o) }, (m) => process.stderr.write(m + '\n'));
      out(clusterTable(states));
      if (o.join && names.includes(CONTROL_PLANE)) {
        const members = states.filter((s) => s.name !== CONTROL_PLANE);
        if (members.length) out(await joinMembers(CONTROL_PLANE, await Promise.all(members.map((m) => localMemberSpec(m.name, m.record!)))));
      }
    });

  program.command('join')
    .description(`join a member cluster to ${CONTROL_PLANE} (applies its Cluster resource): one of this home, or, with --kubeconfig and --gateway-host, one on another host`)
    .argument('<name>', 'the member cluster')
    .option('--kubeconfig <file>', 'the member\'s kubeconfig (`crossmesh kubeconfig get NAME` on its host); default: its context in this home')
    .option('--gateway-host <addr>', 'address other clusters reach the member\'s gateway on (required with --kubeconfig)')
    .option('--gateway-port <port>', 'the member\'s gateway port (required with --kubeconfig)', port)
    .option('--mesh-port <port>', 'the member\'s gateway mesh (tunnel) port (`crossmesh status` on its host shows it)', port)
    .option('--control-plane <name>', 'the control plane context', CONTROL_PLANE)
    .action(async (name: string, o) => {
      const { joinMembers, memberSpecFromFlags } = await lifecycle();
      out(await joinMembers(o.controlPlane, [await memberSpecFromFlags(name, o)]));
    });

  program.command('down')
    .description('stop every cluster and app started under this CROSSMESH_HOME')
    .option('--purge', 'also delete their data (stores, tokens, contexts)', false)
    .action(async (o) => {
      const stopped = await (await lifecycle()).down({ purge: o.purge });
      out(stopped.length ? stopped.map((n) => `stopped ${n}`) : ['nothing was running']);
      if (o.purge) out(['purged cluster data']);
    });

  program.command('status')
    .description('show the clusters of this CROSSMESH_HOME and whether they run')
    .action(async () => {
      const [{ clusterTable, status }, { appsTable, componentsReport, listApps }] = await Promise.all([lifecycle(), apps()]);
      // The clusters' health and the sidecars' component reports are asked for at once.
      const entries = listApps();
      const [states, components] = await Promise.all([status(), componentsReport(entries)]);
      out(states.length ? clusterTable(states) : 'no clusters; start them with `crossmesh up`\n');
      if (entries.length) out('\n' + appsTable(entries));
      if (components) out('\n' + components);
    });

  program.command('run')
    .description('run an app beside a sidecar: `run -n NS --app-id ID [--app-port P] [--app-protocol http|grpc] [--detach] -- CMD ARGS...`')
    .requiredOption('-n, --namespace <ns>', 'namespace of the app (must exist)')
    .requiredOption('--app-id <id>', 'app id (also the name of its Service)')
    .option('--app-port <port>', 'service port callers use (<app-id>.<ns>:<port>); the app itself listens on $APP_PORT. Omit for a client-only app', port)
    .option('--service-account <name>', "the app's mesh identity spiffe://<trust-domain>/ns/<namespace>/sa/<name> (created when missing)", 'default')
    .option('--config <name>', 'the Dapr Configuration (in the namespace) whose spec.secrets.scopes limit the secrets the app may read (daprd --config)')
    .option('--app-protocol <protocol>', "how the sidecar talks to the app (Dapr's --app-protocol): http, or grpc (Dapr invocations call the app's AppCallback/OnInvoke over h2c on $APP_PORT)", 'http')
    .option('--connect-timeout <duration>', 'how long the sidecar waits for a TCP connect to an endpoint or a remote gateway before trying another (Go duration, 10ms-30s)', '500ms')
    .option('-d, --detach', 'run in the background (logs in files) and return once the sidecar is ready', false)
    .argument('[command...]', 'the app\'s command and arguments, after --')
    .action(async (command: string[], o) => {
      if (o.appPort === 0) throw new CrossmeshError('CM_ERR_USAGE', '--app-port: give the service port callers use (1-65535)');
      process.exitCode = await (await apps()).runApp({ cluster: cluster(), namespace: o.namespace, appId: o.appId, appPort: o.appPort, serviceAccount: o.serviceAccount, daprConfig: o.config, appProtocol: o.appProtocol, connectTimeout: o.connectTimeout, detach: o.detach, command }, (l) => out([l]));
    });

  program.command('exec')
    .description('run a command with an app\'s sidecar environment (http_proxy, DAPR_HTTP_PORT, ...), like kubectl exec')
    .requiredOption('-n, --namespace <ns>', 'namespace of the app')
    .requiredOption('--app-id <id>', 'app id')
    .option('--instance <id>', 'which instance (default: the first running one)')
    .argument('[command...]', 'command and arguments, after --')
    .action(async (command: string[], o) => {
      process.exitCode = await (await apps()).execApp({ cluster: cluster(), namespace: o.namespace, appId: o.appId, instance: o.instance, command });
    });

  program.command('stop')
    .description('stop an app (sidecar and app, every instance in the cluster); its endpoints are removed at once')
    .requiredOption('-n, --namespace <ns>', 'namespace of the app')
    .requiredOption('--app-id <id>', 'app id')
    .action(async (o) => {
      out(await (await apps()).stopApp({ cluster: cluster(), namespace: o.namespace, appId: o.appId }));
    });

  program.command('sidecar', { hidden: true })
    .description('run one sidecar and its app in the foreground (what `run --detach` starts)')
    .requiredOption('--config <file>', 'JSON config written by `crossmesh run`')
    .action(async (o) => {
      process.exitCode = await (await apps()).sidecarFromConfig(o.config);
    });

  program.command('ctx')
    .description('show or set the current cluster (like kubectx)')
    .argument('[name]', 'cluster to make current')
    .action(async (name?: string) => {
      const [{ readConfig, writeConfig }, { endpointFor }] = await Promise.all([import('./home.js'), target()]);
      const cfg = readConfig();
      if (!name) {
        out(Object.keys(cfg.contexts).map((n) => (n === cfg.currentContext ? `* ${n}` : `  ${n}`)));
        return;
      }
      endpointFor(name);
      cfg.currentContext = name;
      writeConfig(cfg);
      out([`switched to cluster "${name}"`]);
    });

  program.command('apply')
    .description('create or update the resources in a file (several documents allowed)')
    .requiredOption('-f, --filename <file>', 'manifest file, or - for stdin')
    .option('-n, --namespace <ns>', 'namespace for documents that name none', 'default')
    .action(async (o) => {
      const { applyFile } = await resources();
      out(await withClient(cluster(), (client) => applyFile(client, o.filename, o.namespace)));
    });

  program.command('get')
    .description('list or show resources (kinds by plural, singular, short name or plural.group)')
    .argument('<kind>', 'e.g. serviceexports, sexp, simp, gtp, svc, serviceimports.flomesh.io')
    .argument('[name]')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-A, --all-namespaces', 'across all namespaces', false)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json', 'wide', 'name']))
    .action(async (kind: string, name: string | undefined, o) => {
      const { get } = await resources();
      out(await withClient(cluster(), (client) => get(client, kind, name, { namespace: o.namespace, allNamespaces: o.allNamespaces, output: o.output })));
    });

  program.command('delete')
    .description('delete the resources of a file, or KIND NAME...')
    .argument('[kind]')
    .argument('[names...]')
    .option('-f, --filename <file>', 'manifest file, or - for stdin')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .action(async (kind: string | undefined, names: string[], o) => {
      if (!o.filename && !(kind && names.length)) throw new CrossmeshError('CM_ERR_USAGE', 'delete: give -f FILE, or KIND NAME...');
      const { deleteByName, deleteFile } = await resources();
      out(await withClient(cluster(), (client) => (o.filename ? deleteFile(client, o.filename, o.namespace) : deleteByName(client, kind!, names, o.namespace))));
    });

  const create = program.command('create').description('create a namespace or a secret');
  create.command('namespace')
    .alias('ns')
    .argument('<name>')
    .action(async (name: string) => {
      const { createNamespace } = await resources();
      out([await withClient(cluster(), (client) => createNamespace(client, name))]);
    });
  create.command('secret')
    .argument('<type>', 'generic')
    .argument('<name>')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--from-literal <k=v>', 'a key and literal value (repeatable)', collect, [])
    .action(async (type: string, name: string, o) => {
      if (type !== 'generic') throw new CrossmeshError('CM_ERR_USAGE', `create secret ${type}: only "generic" secrets are supported`);
      if (o.fromLiteral.length === 0) throw new CrossmeshError('CM_ERR_USAGE', 'create secret generic: give at least one --from-literal=KEY=VALUE');
      const { createSecret } = await resources();
      out([await withClient(cluster(), (client) => createSecret(client, name, o.namespace, o.fromLiteral))]);
    });

  program.command('route')
    .description('explain where a call to SERVICE[.NAMESPACE][:PORT] from this cluster goes (policy, endpoints, remote gateways)')
    .argument('<target>', 'e.g. nodeapp.dapr-test:3000')
    .option('-n, --namespace <ns>', 'namespace of the calling app (for short names)', 'default')
    .action(async (where: string, o) => {
      const [{ selectedClusterName }, { explainRoute }] = await Promise.all([target(), import('./commands/route.js')]);
      const name = selectedClusterName(cluster());
      out(await withClient(cluster(), (client) => explainRoute(client, name, where, o.namespace)));
    });

  program.command('demo')
    .description('the reference walkthrough in one command (no flag = install + demo)')
    .option('-i, --install', 'start the four clusters and join the members', false)
    .option('-d, --demo', 'run the walkthrough', false)
    .option('-r, --reset', 'remove what the walkthrough created (apps, namespaces) in every cluster', false)
    .option('-u, --uninstall', 'stop and delete all clusters', false)
    .addOption(new Option('--state <store>', 'state store for nodeapp').choices(['sqlite', 'redis']).default('sqlite'))
    .option('--redis-host <host:port>', 'use this Redis (password changeme) instead of starting redis-server')
    .option('--grpc', 'the walkthrough over gRPC: nodeapp is the gRPC orders app (examples/grpc-orders, --app-protocol grpc), called by its grpc-js client from cluster-2', false)
    .option('--fast', 'skip the informational listing steps', false)
    .option('--quiet', 'print only the checks and the summary', false)
    .option('--api-port <port>', 'API port of the first cluster (0 = free ports)', port, 6444)
    .option('--gateway-port <port>', 'gateway port of the first cluster (0 = free ports)', port, 8080)
    .action(async (o) => {
      const none = !o.install && !o.demo && !o.reset && !o.uninstall;
      const { runDemo } = await import('./commands/demo.js');
      process.exitCode = await runDemo({
        install: o.install || none, demo: o.demo || none, reset: o.reset, uninstall: o.uninstall,
        state: o.state, redisHost: o.redisHost, quiet: o.quiet, fast: o.fast, apiPort: o.apiPort, gatewayPort: o.gatewayPort, grpc: o.grpc,
      });
    });

  program.command('crds')
    .description('print the CustomResourceDefinitions of the crossmesh kinds (multi-document YAML), generated from their schemas')
    .option('--dir <dir>', 'write one file per CRD (<plural>.<group>.yaml) into this directory instead, e.g. deploy/crds')
    .action(async (o) => {
      const { allCrdsYaml, writeCrds } = await import('./commands/crds.js');
      out(o.dir ? writeCrds(o.dir) : allCrdsYaml());
    });

  program.command('kubeconfig')
    .description('print a kubeconfig document for a cluster (what a Cluster resource\'s spec.kubeconfig carries)')
    .argument('<get>', 'the word "get"')
    .argument('[name]', 'cluster (default: the selected one)')
    .action(async (verb: string, name?: string) => {
      if (verb !== 'get') throw new CrossmeshError('CM_ERR_USAGE', `kubeconfig ${verb}: only "kubeconfig get NAME" exists`);
      const [{ endpointFor, selectedClusterName }, { renderKubeconfig }] = await Promise.all([target(), import('../client/kubeconfig.js')]);
      out(renderKubeconfig(endpointFor(name ?? selectedClusterName(cluster()))));
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      process.exitCode = e.exitCode ?? 2;
      return;
    }
    if (isCrossmeshError(err)) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = err.code === 'CM_ERR_USAGE' ? 2 : 1;
      return;
    }
    process.stderr.write(`error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}

await main(process.argv);
